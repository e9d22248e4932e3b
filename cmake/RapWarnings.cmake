# Warnings are errors for our own code only (third-party headers come in as SYSTEM).
add_library(rap_warnings INTERFACE)
target_compile_options(rap_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Werror -Wshadow -Wnon-virtual-dtor -Wold-style-cast
  -Wcast-align -Wunused -Woverloaded-virtual -Wimplicit-fallthrough
  # GCC 12 false positives inside libstdc++ at -O2/-O3 (std::string, PR105329).
  $<$<CXX_COMPILER_ID:GNU>:-Wno-maybe-uninitialized -Wno-restrict -Wno-missing-field-initializers>)

# rap_library(NAME SOURCES ... DEPS ...): one library per layer, public headers in include/.
function(rap_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SOURCES})
  target_include_directories(${name} PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/include)
  target_link_libraries(${name} PUBLIC ${ARG_DEPS} PRIVATE rap_warnings ${ARG_PRIVATE_DEPS})
endfunction()
