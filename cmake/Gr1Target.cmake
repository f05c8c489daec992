# One helper makes every library and executable the same way: warnings,
# sanitizers and include roots are set once here.
set(GR1_WARNINGS -Wall -Wextra -Wno-unused-parameter -Wno-sign-compare)

function(gr1_common_settings target)
  target_compile_options(${target} PRIVATE ${GR1_WARNINGS})
  target_include_directories(${target} PUBLIC ${PROJECT_SOURCE_DIR})
  if(GR1_SANITIZE)
    target_compile_options(${target} PRIVATE -fsanitize=address,undefined -fno-omit-frame-pointer)
    target_link_options(${target} PUBLIC -fsanitize=address,undefined)
  endif()
endfunction()

# gr1_add_library(NAME SOURCES a.cc b.cc DEPS x y)
function(gr1_add_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SOURCES})
  gr1_common_settings(${name})
  target_link_libraries(${name} PUBLIC ${ARG_DEPS})
endfunction()

# gr1_add_executable(NAME SOURCES ... DEPS ...)
function(gr1_add_executable name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  gr1_common_settings(${name})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS})
endfunction()
