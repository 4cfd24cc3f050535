# cmake -D TEST_EXECUTABLE=... -D CASES_FILE=... -P NatgradListCatchCases.cmake
# Run after each link of a Catch2 test binary (natgrad_add_catch_mpi_tests in
# NatgradTesting.cmake): lists its test cases and writes CASES_FILE, one
# natgrad_case(<name> <test spec>) call per case, for ctest to include. The spec is the
# name with Catch's special characters escaped; a name beginning with '-' or '~' (an
# option or an exclusion to Catch) becomes "*<name>", which matches it alone.
execute_process(COMMAND "${TEST_EXECUTABLE}" --list-test-names-only
  OUTPUT_VARIABLE out RESULT_VARIABLE rc)
if(NOT rc MATCHES "^[0-9]+$")  # Catch returns the number of cases
  message(FATAL_ERROR "listing the test cases of ${TEST_EXECUTABLE} failed (${rc}):\n${out}")
endif()
if(out MATCHES ";")
  message(FATAL_ERROR "a test case name of ${TEST_EXECUTABLE} holds ';' (ctest cannot name it)")
endif()
string(REPLACE "\n" ";" lines "${out}")
set(script "# Generated from ${TEST_EXECUTABLE} --list-test-names-only.\n")
set(n 0)
foreach(name IN LISTS lines)
  if(name STREQUAL "")
    continue()
  endif()
  set(spec "${name}")
  foreach(c "\\" "," "[" "]" "\"")
    string(REPLACE "${c}" "\\${c}" spec "${spec}")
  endforeach()
  if(spec MATCHES "^[-~]")
    set(spec "*${spec}")
  endif()
  string(APPEND script "natgrad_case([==[${name}]==] [==[${spec}]==])\n")
  math(EXPR n "${n} + 1")
endforeach()
if(n EQUAL 0)
  message(FATAL_ERROR "${TEST_EXECUTABLE} lists no test cases")
endif()
file(WRITE "${CASES_FILE}" "${script}")
