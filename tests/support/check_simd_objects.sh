#!/usr/bin/env bash
# The per-ISA kernel objects (src/core/simd_avx2.cpp, simd_avx512.cpp) are compiled with
# -mavx2 / -mavx512*: any symbol they define other than their KernelSet (a weak inline
# function, a template instantiation) could be merged by the linker into code that runs on
# a CPU without those instructions. Checks each defines exactly its KernelSet objects.
# usage: check_simd_objects.sh OBJECT... (or one ';'-separated list, as CMake passes it)
set -euo pipefail
found=0 bad=0
IFS=';' read -r -a objects <<< "$*"
for o in "${objects[@]}"; do
  o=${o# }
  case $o in *simd_avx*) ;; *) continue ;; esac
  found=$((found + 1))
  defined=$(nm -C --defined-only "$o" | awk '$2 !~ /^[tbdr]$/ { $1 = ""; print }')
  other=$(printf '%s\n' "$defined" | grep -v -E '^ D natgrad::detail::k[A-Za-z0-9]+Set$' | grep -v '^$' || true)
  echo "$o:"; printf '%s\n' "$defined"
  if [ -n "$other" ]; then
    echo "FAIL: $o defines symbols other than its KernelSet:"; printf '%s\n' "$other"; bad=1
  fi
  printf '%s\n' "$defined" | grep -q 'Set$' || { echo "FAIL: $o defines no KernelSet"; bad=1; }
done
[ "$found" -ge 2 ] || { echo "FAIL: expected the simd_avx2 and simd_avx512 objects, found $found"; exit 1; }
exit $bad
