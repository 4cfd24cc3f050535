# The wide benchmark's driver on a 200 x 500 generated file (no network, a few seconds):
# tests/bench/wide/run.sh must write one record and one table row per tool that is
# installed (LIBLINEAR when liblinear-train is on the PATH; natgrad always, whatever its
# status), and the objective evaluator must find LIBLINEAR's tight answer (-e 1e-8) a
# minimum of f: max |grad f| small, which fails if the labels' sign, the indices or the
# C scaling were read wrongly. Nothing is timed. Skipped (SKIP_REGULAR_EXPRESSION) without Debian's
# python3 with numpy, scipy and sklearn.
# Usage: cmake -DRUN=run.sh -DBUILD=build_dir -DWORK=dir -P smoke_test.cmake
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})
execute_process(COMMAND /usr/bin/python3 -c "import numpy, scipy, sklearn" RESULT_VARIABLE rc
                OUTPUT_QUIET ERROR_QUIET)
if(NOT rc EQUAL 0)
  message(STATUS "wide bench smoke test skipped: /usr/bin/python3 lacks numpy, scipy or sklearn")
  return()
endif()
find_program(LIBLINEAR liblinear-train)
set(tools natgrad)
set(expect natgrad-np1)
if(LIBLINEAR)
  set(tools liblinear,natgrad)
  set(expect liblinear-e1e-8 natgrad-np1)
endif()
execute_process(
  COMMAND ${CMAKE_COMMAND} -E env LIBLINEAR_EPS=1e-8 REFERENCE=liblinear-e1e-8
          bash ${RUN} ${BUILD} --no-install --data-dir ${WORK}/data --out ${WORK}/out
          --timeout 60 --mem-limit-gib 4 --tools ${tools} smoke
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "run.sh failed (${rc}):\n${out}\n${err}")
endif()
file(STRINGS ${WORK}/out/wide.csv lines)
list(GET lines 0 header)
if(NOT header STREQUAL "dataset,rows,cols,nnz,C,l2,tool,status,wall_s,cpu_s,max_rss_mib,timeout_s,objective,grad_inf,load1,note,command")
  message(FATAL_ERROR "wide.csv header is '${header}'")
endif()
list(LENGTH expect ne)
math(EXPR ne "${ne} + 1")
list(LENGTH lines n)
if(NOT n EQUAL ne)
  message(FATAL_ERROR "wide.csv has ${n} lines, expected ${ne} (tools: ${expect}):\n${out}\n${err}")
endif()
file(READ ${WORK}/out/wide.md md)
foreach(t IN LISTS expect)
  string(FIND "${md}" "| ${t} | " at)
  if(at EQUAL -1)
    message(FATAL_ERROR "wide.md has no row for ${t}:\n${md}")
  endif()
endforeach()
foreach(t IN LISTS expect)
  set(l ${lines})
  list(FILTER l INCLUDE REGEX "^smoke,200,500,2000,1,1,${t},(ok|failed|timeout|memory),[0-9.]+,[0-9.]+,[0-9]+,60,")
  list(LENGTH l k)
  if(NOT k EQUAL 1)
    message(FATAL_ERROR "no well-formed record for ${t} in wide.csv:\n${lines}")
  endif()
endforeach()
if(LIBLINEAR)
  set(l ${lines})
  list(FILTER l INCLUDE REGEX "^smoke,.*,liblinear-e1e-8,ok,")
  if(NOT l MATCHES ",ok,[0-9.]+,[0-9.]+,[0-9]+,60,([0-9.e+-]+),([0-9.e+-]+),")
    message(FATAL_ERROR "LIBLINEAR ran but has no objective: '${l}'")
  endif()
  set(grad ${CMAKE_MATCH_2})
  # LIBLINEAR -e 1e-8 stops at |grad f|_2 <= 1e-8 min(pos,neg)/l |grad f(0)|_2: far below 1e-4.
  execute_process(COMMAND /usr/bin/python3 -c "import sys; sys.exit(not float('${grad}') < 1e-4)"
                  RESULT_VARIABLE bad)
  if(NOT bad EQUAL 0)
    message(FATAL_ERROR "LIBLINEAR's -e 1e-8 answer has max |grad f| = ${grad} by wide.py objective: "
                        "the evaluator does not compute LIBLINEAR's objective")
  endif()
endif()
message(STATUS "wide bench smoke test: a record and a table row for ${expect}")
