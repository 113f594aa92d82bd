# Finds Debian's libcaf-dev (0.17.6), which ships no CMake or pkg-config files.
# Creates CAF::core, CAF::io and CAF::openssl, the target names upstream CAF uses.
find_path(CAF_INCLUDE_DIR caf/config.hpp)
if(CAF_INCLUDE_DIR AND EXISTS "${CAF_INCLUDE_DIR}/caf/config.hpp")
  file(STRINGS "${CAF_INCLUDE_DIR}/caf/config.hpp" _caf_v
       REGEX "^#define CAF_VERSION [0-9]+")
  string(REGEX REPLACE "^#define CAF_VERSION ([0-9]+).*" "\\1" _caf_v "${_caf_v}")
  math(EXPR _caf_maj "${_caf_v} / 10000") # CAF_VERSION 1706 -> 0.17.6
  math(EXPR _caf_min "(${_caf_v} / 100) % 100")
  math(EXPR _caf_pat "${_caf_v} % 100")
  set(CAF_VERSION "${_caf_maj}.${_caf_min}.${_caf_pat}")
endif()
if(NOT CAF_FIND_COMPONENTS)
  set(CAF_FIND_COMPONENTS core io)
endif()
find_package(Threads REQUIRED)
foreach(comp IN LISTS CAF_FIND_COMPONENTS)
  find_library(CAF_${comp}_LIBRARY NAMES caf_${comp})
  if(CAF_${comp}_LIBRARY AND CAF_INCLUDE_DIR)
    set(CAF_${comp}_FOUND TRUE)
    if(NOT TARGET CAF::${comp})
      add_library(CAF::${comp} UNKNOWN IMPORTED)
      set_target_properties(CAF::${comp} PROPERTIES
        IMPORTED_LOCATION "${CAF_${comp}_LIBRARY}"
        INTERFACE_INCLUDE_DIRECTORIES "${CAF_INCLUDE_DIR}")
      set(_caf_deps Threads::Threads)
      if(NOT comp STREQUAL "core")
        list(APPEND _caf_deps CAF::core)
      endif()
      if(comp STREQUAL "openssl")
        find_package(OpenSSL REQUIRED)
        list(APPEND _caf_deps CAF::io OpenSSL::SSL OpenSSL::Crypto)
      endif()
      set_target_properties(CAF::${comp} PROPERTIES
        INTERFACE_LINK_LIBRARIES "${_caf_deps}")
    endif()
  endif()
endforeach()
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(CAF
  REQUIRED_VARS CAF_INCLUDE_DIR
  VERSION_VAR CAF_VERSION
  HANDLE_COMPONENTS)
