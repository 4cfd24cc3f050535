# Optional parallel HDF5 input (src/reader_hdf5.cpp): NATGRAD_HDF5 is AUTO (on when a
# parallel HDF5 C library is found, e.g. Debian's libhdf5-openmpi-dev), ON (required) or
# OFF. Sets NATGRAD_HDF5_FOUND, NATGRAD_HDF5_INCLUDE_DIRS and NATGRAD_HDF5_LIBRARY (the
# hdf5 library's full path: linked privately by the static natgrad library, so the
# exported target needs no find_package(HDF5) in consumers).
set(NATGRAD_HDF5 AUTO CACHE STRING "Parallel HDF5 input: AUTO, ON or OFF")
set_property(CACHE NATGRAD_HDF5 PROPERTY STRINGS AUTO ON OFF)
set(NATGRAD_HDF5_FOUND FALSE)
if(NOT NATGRAD_HDF5 STREQUAL "OFF")
  # FindHDF5 compiles a C test program: enable C only when a compiler exists.
  include(CheckLanguage)
  check_language(C)
  if(CMAKE_C_COMPILER)
    enable_language(C)
    set(HDF5_PREFER_PARALLEL TRUE)
    find_package(HDF5 COMPONENTS C QUIET)
  endif()
  if(HDF5_FOUND AND HDF5_IS_PARALLEL AND HDF5_C_LIBRARY_hdf5)
    set(NATGRAD_HDF5_FOUND TRUE)
    set(NATGRAD_HDF5_INCLUDE_DIRS ${HDF5_C_INCLUDE_DIRS})
    set(NATGRAD_HDF5_LIBRARY ${HDF5_C_LIBRARY_hdf5})
    message(STATUS "natgrad: parallel HDF5 ${HDF5_VERSION} input enabled (${NATGRAD_HDF5_LIBRARY})")
  elseif(NATGRAD_HDF5 STREQUAL "ON")
    message(FATAL_ERROR "NATGRAD_HDF5=ON but no parallel HDF5 C library was found "
                        "(Debian: apt-get install libhdf5-openmpi-dev)")
  else()
    message(STATUS "natgrad: no parallel HDF5 found; HDF5 input disabled (NATGRAD_HDF5=${NATGRAD_HDF5})")
  endif()
endif()
