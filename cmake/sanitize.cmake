# HS_SANITIZE=ON: AddressSanitizer + UndefinedBehaviorSanitizer for the tool,
# its libraries, the tests and the fuzzer (scripts/test.sh --sanitize builds
# this into build-asan). Only code that links a hotsplice library gets them:
# the target programs under tests/e2e/targets, the unit tests' helper
# children and the payloads the builder makes stay plain, since hotsplice
# attaches to them with ptrace and injects code into them.
option(HS_SANITIZE "Build the tool, the tests and the fuzzer with ASan + UBSan" OFF)
if(HS_SANITIZE)
  set(HS_SANITIZE_FLAGS -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_library(hs_sanitize INTERFACE)
  target_compile_options(hs_sanitize INTERFACE ${HS_SANITIZE_FLAGS})
  target_link_options(hs_sanitize INTERFACE ${HS_SANITIZE_FLAGS})
  # Every layer links hs_support publicly, so everything that links a layer
  # is built and linked with the sanitizers.
  target_link_libraries(hs_support PUBLIC hs_sanitize)
  # libasan replaces operator new/delete by interposition; a libstdc++
  # linked statically into the executable would take precedence over it.
  # The sanitized tool links libstdc++ and libgcc dynamically.
  if(TARGET hotsplice)
    get_target_property(link_opts hotsplice LINK_OPTIONS)
    list(REMOVE_ITEM link_opts -static-libstdc++ -static-libgcc)
    set_property(TARGET hotsplice PROPERTY LINK_OPTIONS "${link_opts}")
  endif()
endif()
