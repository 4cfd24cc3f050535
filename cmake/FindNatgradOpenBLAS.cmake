# Finds OpenBLAS (BLAS + LAPACK in one library), preferring the OpenMP build, then the
# serial one, so that BLAS threads never multiply with natgrad's OpenMP threads.
# Debian installs the variants side by side under <libdir>/openblas-<variant>/.
# Defines the imported target NatgradOpenBLAS::OpenBLAS and NatgradOpenBLAS_VARIANT.
include(FindPackageHandleStandardArgs)
set(_ng_arch_dirs /usr/lib/${CMAKE_LIBRARY_ARCHITECTURE} /usr/lib64 /usr/lib /usr/local/lib)
set(NatgradOpenBLAS_VARIANT "")
foreach(_variant openmp serial)
  if(NOT NatgradOpenBLAS_LIBRARY)
    set(_dirs "")
    foreach(_d ${_ng_arch_dirs})
      list(APPEND _dirs ${_d}/openblas-${_variant})
    endforeach()
    find_library(NatgradOpenBLAS_LIBRARY NAMES openblas PATHS ${_dirs} NO_DEFAULT_PATH)
    if(NatgradOpenBLAS_LIBRARY)
      set(NatgradOpenBLAS_VARIANT ${_variant})
      find_path(NatgradOpenBLAS_INCLUDE_DIR cblas.h
        PATHS /usr/include/${CMAKE_LIBRARY_ARCHITECTURE}/openblas-${_variant} NO_DEFAULT_PATH)
    endif()
  endif()
endforeach()
if(NOT NatgradOpenBLAS_LIBRARY)
  # Non-Debian layout: a plain libopenblas; its threading is reported at run time.
  find_library(NatgradOpenBLAS_LIBRARY NAMES openblas openblaso openblasp)
  find_path(NatgradOpenBLAS_INCLUDE_DIR cblas.h PATH_SUFFIXES openblas)
  set(NatgradOpenBLAS_VARIANT "unknown")
endif()
find_package_handle_standard_args(NatgradOpenBLAS
  REQUIRED_VARS NatgradOpenBLAS_LIBRARY NatgradOpenBLAS_INCLUDE_DIR)
if(NatgradOpenBLAS_FOUND AND NOT TARGET NatgradOpenBLAS::OpenBLAS)
  add_library(NatgradOpenBLAS::OpenBLAS UNKNOWN IMPORTED)
  set_target_properties(NatgradOpenBLAS::OpenBLAS PROPERTIES
    IMPORTED_LOCATION "${NatgradOpenBLAS_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${NatgradOpenBLAS_INCLUDE_DIR}")
  # Debian's libopenblas.so.0 is an alternatives link that may point at the pthreads
  # build; a run path to the chosen variant's directory makes the loader take that one.
  get_filename_component(_ng_blas_dir "${NatgradOpenBLAS_LIBRARY}" DIRECTORY)
  if(NOT NatgradOpenBLAS_VARIANT STREQUAL "unknown")
    set_property(TARGET NatgradOpenBLAS::OpenBLAS PROPERTY
      INTERFACE_LINK_OPTIONS "LINKER:-rpath,${_ng_blas_dir}")
  endif()
  message(STATUS "natgrad: OpenBLAS (${NatgradOpenBLAS_VARIANT}) at ${NatgradOpenBLAS_LIBRARY}")
  if(NatgradOpenBLAS_VARIANT STREQUAL "unknown")
    message(WARNING "OpenBLAS variant unknown: if it is the pthreads build, BLAS threads may "
                    "multiply with OpenMP threads ('natgrad selftest' checks this)")
  endif()
endif()
