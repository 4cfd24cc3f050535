# Test registration helpers (tests/README.md). The root/oversubscribe settings OpenMPI
# needs in containers and on small CI machines live here, in the tests, not in users' paths.
set(NATGRAD_TEST_MPI_ENV
  "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMPI_MCA_rmaps_base_oversubscribe=1;OMP_NUM_THREADS=1;OMPI_MCA_btl_vader_single_copy_mechanism=none")
set(NATGRAD_TEST_MPIEXEC_PREFLAGS --oversubscribe)
set(_natgrad_testing_dir ${CMAKE_CURRENT_LIST_DIR})

# natgrad_add_script_test(NAME n SCRIPT path [RANKS k...] [ARGS a...] [LABELS l...]
#                         [TIMEOUT s] [PROCESSORS p])
# A bash script test (tests/support/harness.sh). With RANKS, one test "n.np<k>" per k
# running `bash SCRIPT <natgrad> k <binary dir>/n-np<k> <mpiexec>` on k processors; without,
# one test "n" running `bash SCRIPT ARGS...` on PROCESSORS (default 1). Every script runs
# with NATGRAD_TEST_MPI_ENV; TIMEOUT defaults to 300 s.
function(natgrad_add_script_test)
  cmake_parse_arguments(A "" "NAME;SCRIPT;TIMEOUT;PROCESSORS" "RANKS;ARGS;LABELS" ${ARGN})
  if(NOT A_TIMEOUT)
    set(A_TIMEOUT 300)
  endif()
  if(NOT A_PROCESSORS)
    set(A_PROCESSORS 1)
  endif()
  set(script ${PROJECT_SOURCE_DIR}/${A_SCRIPT})
  set(names)
  if(A_RANKS)
    foreach(np IN LISTS A_RANKS)
      add_test(NAME ${A_NAME}.np${np} COMMAND bash ${script} $<TARGET_FILE:natgrad> ${np}
               ${CMAKE_CURRENT_BINARY_DIR}/${A_NAME}-np${np} ${MPIEXEC_EXECUTABLE})
      set_tests_properties(${A_NAME}.np${np} PROPERTIES PROCESSORS ${np})
      list(APPEND names ${A_NAME}.np${np})
    endforeach()
  else()
    add_test(NAME ${A_NAME} COMMAND bash ${script} ${A_ARGS})
    set_tests_properties(${A_NAME} PROPERTIES PROCESSORS ${A_PROCESSORS})
    set(names ${A_NAME})
  endif()
  set_tests_properties(${names} PROPERTIES
    ENVIRONMENT "${NATGRAD_TEST_MPI_ENV}" LABELS "${A_LABELS}" TIMEOUT ${A_TIMEOUT})
endfunction()

# natgrad_add_catch_mpi_tests(TARGET t PREFIX p RANKS k... [LABELS l...] [TIMEOUT s])
# Registers every Catch2 test case of the MPI test binary t at each rank count k, as the
# ctest test "p.np<k>.<case name>" running `mpiexec -n k t <case>` on k processors, so
# ctest lists, runs (-R, -j) and reports each case. The cases are listed after each link
# (t --list-test-names-only, which tests/mpi_main.cpp answers without MPI), as Catch.cmake's
# catch_discover_tests does; that has no launcher, hence this. A case name that begins
# with '-' is passed as "*<name>" (Catch would read it as an option); --warn NoTests makes
# a spec that matches no case a failure.
function(natgrad_add_catch_mpi_tests)
  cmake_parse_arguments(A "" "TARGET;PREFIX;TIMEOUT" "RANKS;LABELS" ${ARGN})
  if(NOT A_TIMEOUT)
    set(A_TIMEOUT 300)
  endif()
  set(cases ${CMAKE_CURRENT_BINARY_DIR}/${A_TARGET}_cases.cmake)
  set(include_file ${CMAKE_CURRENT_BINARY_DIR}/${A_TARGET}_include.cmake)
  add_custom_command(TARGET ${A_TARGET} POST_BUILD
    COMMAND ${CMAKE_COMMAND} -D "TEST_EXECUTABLE=$<TARGET_FILE:${A_TARGET}>" -D "CASES_FILE=${cases}"
            -P ${_natgrad_testing_dir}/NatgradListCatchCases.cmake
    VERBATIM)
  set(launcher ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} "\${np}" ${NATGRAD_TEST_MPIEXEC_PREFLAGS}
               ${MPIEXEC_PREFLAGS} $<TARGET_FILE:${A_TARGET}> ${MPIEXEC_POSTFLAGS})
  list(JOIN launcher " " launcher)
  list(JOIN A_RANKS " " ranks)
  # Read by ctest, not cmake: natgrad_case() is called once per case by the cases file.
  file(GENERATE OUTPUT ${include_file} CONTENT
"function(natgrad_case name spec)
  foreach(np ${ranks})
    add_test(\"${A_PREFIX}.np\${np}.\${name}\" ${launcher} \"\${spec}\" --warn NoTests)
    set_tests_properties(\"${A_PREFIX}.np\${np}.\${name}\" PROPERTIES
      ENVIRONMENT \"${NATGRAD_TEST_MPI_ENV}\" LABELS \"${A_LABELS}\" PROCESSORS \${np} TIMEOUT ${A_TIMEOUT})
  endforeach()
endfunction()
if(EXISTS \"${cases}\")
  include(\"${cases}\")
else()
  add_test(${A_PREFIX}_NOT_BUILT ${A_PREFIX}_NOT_BUILT)
endif()
")
  set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES ${include_file})
endfunction()

# natgrad_add_header_checks(): every public header, include/natgrad/<stage>/<name>.hpp, is
# compiled on its own, twice over (so its include guard is tested too), in a generated
# source file that includes nothing else. It is part of the default build: a header
# that is not self-contained fails the build. Each stage's checks link that stage's
# target (natgrad_<stage>: its include paths, MPI, OpenMP) and the project's warnings.
function(natgrad_add_header_checks)
  file(GLOB_RECURSE headers CONFIGURE_DEPENDS RELATIVE ${PROJECT_SOURCE_DIR}/include
       ${PROJECT_SOURCE_DIR}/include/natgrad/*.hpp)
  set(stages)
  foreach(h IN LISTS headers)
    string(REGEX REPLACE "^natgrad/([^/]+)/.*" "\\1" stage ${h})
    string(MAKE_C_IDENTIFIER ${h} id)
    set(src ${CMAKE_CURRENT_BINARY_DIR}/header_checks/${id}.cpp)
    file(CONFIGURE OUTPUT ${src} CONTENT "// Generated: ${h} compiles on its own.\n#include \"${h}\"\n#include \"${h}\"\n")
    list(APPEND srcs_${stage} ${src})
    list(APPEND stages ${stage})
  endforeach()
  list(REMOVE_DUPLICATES stages)
  foreach(stage IN LISTS stages)
    if(NOT TARGET natgrad_${stage})
      message(FATAL_ERROR "natgrad: public headers under include/natgrad/${stage}/ but no target natgrad_${stage}")
    endif()
    add_library(natgrad_header_check_${stage} OBJECT ${srcs_${stage}})
    target_link_libraries(natgrad_header_check_${stage} PRIVATE natgrad_${stage} natgrad_warnings)
  endforeach()
endfunction()

# A short libFuzzer run of the CSV and LIBSVM parsers (fuzz/run_fuzz.sh: a clang build of
# the readers in its own folder, then 10 s per target). Registered when clang++ exists.
function(natgrad_add_fuzz_test)
  find_program(NATGRAD_CLANGXX NAMES clang++ clang++-14)
  if(NOT NATGRAD_CLANGXX)
    message(STATUS "natgrad: no clang++, so no 'fuzz' test (fuzz/run_fuzz.sh)")
    return()
  endif()
  add_test(NAME fuzz
    COMMAND ${CMAKE_COMMAND} -E env NATGRAD_FUZZ_CXX=${NATGRAD_CLANGXX}
            bash ${PROJECT_SOURCE_DIR}/fuzz/run_fuzz.sh 10 ${CMAKE_CURRENT_BINARY_DIR}/fuzz-build)
  set_tests_properties(fuzz PROPERTIES LABELS "fuzz" PROCESSORS 2 TIMEOUT 300)
endfunction()
