#!/usr/bin/env python3
"""A CSV shaped like AER's Fertility (254,654 rows) for the read_frame benchmark:
8 text columns (yes/no, male/female, 50 states, 5 education levels) and 2 numeric ones.

    python3 tests/bench/make_frame_csv.py /tmp/fert.csv
    mpirun -np 1 build/release/natgrad_bench frame --data /tmp/fert.csv --threads 2
"""
import random
import sys

random.seed(1)
rows = int(sys.argv[2]) if len(sys.argv) > 2 else 254654
states = ["s%02d" % i for i in range(50)]
edus = ["none", "primary", "secondary", "college", "graduate"]
yn = ["yes", "no"]
mf = ["male", "female"]
with open(sys.argv[1], "w") as f:
    f.write("morekids,gender1,gender2,age,afam,hispanic,other,work,state,edu\n")
    for _ in range(rows):
        f.write("%s,%s,%s,%d,%s,%s,%s,%d,%s,%s\n" % (
            random.choice(yn), random.choice(mf), random.choice(mf), random.randint(21, 35),
            random.choice(yn[::-1]), random.choice(yn[::-1]), random.choice(yn[::-1]),
            random.randint(0, 52), random.choice(states), random.choice(edus)))
