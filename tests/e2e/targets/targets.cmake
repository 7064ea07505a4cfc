# Targets that need more than "one .c file -> one executable" (included by
# tests/e2e/CMakeLists.txt after the per-file executables are declared).
set(HS_TARGET_OUT ${CMAKE_CURRENT_BINARY_DIR}/targets)
set(HS_TARGET_FLAGS -O2 -g -fno-omit-frame-pointer)

# dup: two files each defining `static int twin(void)`, for "file.c#twin" and
# "twin,N". Link order matters: twin,1 is dup_a.c's, twin,2 is dup_b.c's.
add_executable(dup targets/dup/main.c targets/dup/dup_a.c targets/dup/dup_b.c)
set_target_properties(dup PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${HS_TARGET_OUT})
target_compile_options(dup PRIVATE ${HS_TARGET_FLAGS})
list(APPEND HS_TARGET_NAMES dup)

# cet: every function starts with endbr64.
target_compile_options(cet PRIVATE -fcf-protection=full)

# libgreet.so and the greeter program that calls it.
add_library(greet SHARED targets/libgreet.c)
set_target_properties(greet PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${HS_TARGET_OUT} BUILD_RPATH ${HS_TARGET_OUT})
target_compile_options(greet PRIVATE ${HS_TARGET_FLAGS})
target_link_libraries(greeter PRIVATE greet)
set_target_properties(greeter PROPERTIES BUILD_RPATH ${HS_TARGET_OUT})
list(APPEND HS_TARGET_NAMES greet)

# builder_test builds every patch in patches/ against its target.
if(TARGET builder_test)
  add_dependencies(builder_test ${HS_TARGET_NAMES})
endif()
