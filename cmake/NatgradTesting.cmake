# Test registration helpers. The root/oversubscribe settings OpenMPI needs in
# containers and on small CI machines live here, in the tests, not in users' paths.
set(NATGRAD_TEST_MPI_ENV
  "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMPI_MCA_rmaps_base_oversubscribe=1;OMP_NUM_THREADS=1;OMPI_MCA_btl_vader_single_copy_mechanism=none")
set(NATGRAD_TEST_MPIEXEC_PREFLAGS --oversubscribe)

# natgrad_add_mpi_test(NAME n TARGET t RANKS 1 2 ... [ARGS ...])
# Registers test "n.np<k>" running target t under mpiexec with k ranks, for each k.
function(natgrad_add_mpi_test)
  cmake_parse_arguments(A "" "NAME;TARGET" "RANKS;ARGS;LABELS" ${ARGN})
  foreach(np IN LISTS A_RANKS)
    set(tname ${A_NAME}.np${np})
    add_test(NAME ${tname}
      COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${np} ${NATGRAD_TEST_MPIEXEC_PREFLAGS}
              ${MPIEXEC_PREFLAGS} $<TARGET_FILE:${A_TARGET}> ${MPIEXEC_POSTFLAGS} ${A_ARGS})
    set_tests_properties(${tname} PROPERTIES
      ENVIRONMENT "${NATGRAD_TEST_MPI_ENV}"
      LABELS "mpi;${A_LABELS}"
      PROCESSORS ${np}
      TIMEOUT 300)
  endforeach()
endfunction()

# End-to-end CLI tests driven by tests/cli/run_cli_tests.sh.
function(natgrad_add_cli_tests)
  foreach(np 1 2 3 4)
    add_test(NAME cli.np${np}
      COMMAND bash ${PROJECT_SOURCE_DIR}/tests/cli/run_cli_tests.sh $<TARGET_FILE:natgrad> ${np}
              ${CMAKE_CURRENT_BINARY_DIR}/cli-np${np} ${MPIEXEC_EXECUTABLE})
    set_tests_properties(cli.np${np} PROPERTIES
      ENVIRONMENT "${NATGRAD_TEST_MPI_ENV}"
      LABELS "cli;mpi"
      PROCESSORS ${np}
      TIMEOUT 600)
  endforeach()
  # GLM families, predict and the hard cases, through the CLI, at 1 and 4 ranks.
  foreach(np 1 4)
    add_test(NAME cli_glm.np${np}
      COMMAND bash ${PROJECT_SOURCE_DIR}/tests/cli/run_glm_cli_tests.sh $<TARGET_FILE:natgrad> ${np}
              ${CMAKE_CURRENT_BINARY_DIR}/cli-glm-np${np} ${MPIEXEC_EXECUTABLE})
    set_tests_properties(cli_glm.np${np} PROPERTIES
      ENVIRONMENT "${NATGRAD_TEST_MPI_ENV}"
      LABELS "cli;mpi;glm"
      PROCESSORS ${np}
      TIMEOUT 600)
  endforeach()
  # One dataset as CSV, NPY, LIBSVM and HDF5 fits to the same coefficients; predict
  # with --label-column none.
  foreach(np 1 4)
    add_test(NAME formats.np${np}
      COMMAND bash ${PROJECT_SOURCE_DIR}/tests/cli/run_format_tests.sh $<TARGET_FILE:natgrad> ${np}
              ${CMAKE_CURRENT_BINARY_DIR}/formats-np${np} ${MPIEXEC_EXECUTABLE})
    set_tests_properties(formats.np${np} PROPERTIES
      ENVIRONMENT "${NATGRAD_TEST_MPI_ENV}"
      LABELS "cli;mpi;formats"
      PROCESSORS ${np}
      TIMEOUT 300)
  endforeach()
  # The bad-input corpus (tests/corpus/cases.txt): one message, non-zero exit, no hang,
  # no partial outputs, at 1 and 4 ranks.
  foreach(np 1 4)
    add_test(NAME corpus.np${np}
      COMMAND bash ${PROJECT_SOURCE_DIR}/tests/corpus/run_corpus.sh $<TARGET_FILE:natgrad> ${np}
              ${CMAKE_CURRENT_BINARY_DIR}/corpus-np${np} ${MPIEXEC_EXECUTABLE})
    set_tests_properties(corpus.np${np} PROPERTIES
      ENVIRONMENT "${NATGRAD_TEST_MPI_ENV}"
      LABELS "corpus;mpi"
      PROCESSORS ${np}
      TIMEOUT 600)
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
