# Tests beyond the globbed unit and stress programs.

# Each example against the output of its Go original (examples/expected).
file(GLOB KANAL_EXPECTED CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/examples/expected/*.txt)
foreach(exp ${KANAL_EXPECTED})
  get_filename_component(name ${exp} NAME_WE)
  if(TARGET example_${name})
    add_test(NAME example_${name}
      COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/check_example $<TARGET_FILE:example_${name}> ${exp})
    set_tests_properties(example_${name} PROPERTIES LABELS example TIMEOUT 120)
  endif()
endforeach()

# Every kanal benchmark runs and verifies its result (small item counts).
if(TARGET kn-bench)
  add_test(NAME bench_smoke COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/check_bench $<TARGET_FILE:kn-bench>)
  set_tests_properties(bench_smoke PROPERTIES LABELS "bench;nosan" TIMEOUT 900)
endif()

# The epoll echo server example as a process: the stress driver reads the
# port from its first line, drives it and checks that each budget and
# signal ends it cleanly (tests/stress/stress_epoll.c).
if(TARGET example_epoll_server AND TARGET stress_epoll)
  add_test(NAME example_epoll_server
    COMMAND stress_epoll --seconds 0 --exec $<TARGET_FILE:example_epoll_server>)
  set_tests_properties(example_epoll_server PROPERTIES LABELS example TIMEOUT 600)
endif()

# The network examples drive themselves on 127.0.0.1 (a client mode in the
# same process) and fail unless every reply matched.
foreach(name echo_server http_server)
  if(TARGET example_${name})
    add_test(NAME example_${name} COMMAND example_${name} --conns 200 --msgs 50)
    set_tests_properties(example_${name} PROPERTIES LABELS example TIMEOUT 120)
  endif()
endforeach()

# Allocation-failure sweeps (tests/fault/fault_*.c, see tests/fault/sweep.h):
# only in the fault build, where kn_fault_fail_nth exists; label "fault".
if(KANAL_FAULT)
  file(GLOB KANAL_FAULT_TESTS CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/fault/fault_*.c)
  foreach(src ${KANAL_FAULT_TESTS})
    get_filename_component(name ${src} NAME_WE)
    kanal_test(${name} ${src} LABEL fault TIMEOUT 900)
  endforeach()
endif()

# The Debug build's use-after-free checks (tools/test's "debug" stage):
# only where freed memory may be read on purpose, i.e. without sanitizers.
if(CMAKE_BUILD_TYPE STREQUAL "Debug" AND NOT KANAL_SANITIZE)
  # A broken invariant aborts the Debug build (KN_ASSERT).
  kanal_test(test_assert ${CMAKE_CURRENT_SOURCE_DIR}/debug/test_assert.c CRITERION LABEL debug TIMEOUT 120)
  kanal_test(test_uaf ${CMAKE_CURRENT_SOURCE_DIR}/debug/test_uaf.c CRITERION LABEL debug TIMEOUT 300)
  # Misuses that hang Release abort Debug with a message (death tests).
  kanal_test(test_misuse ${CMAKE_CURRENT_SOURCE_DIR}/debug/test_misuse.c CRITERION LABEL debug TIMEOUT 300)
endif()

# Every C snippet of README.md compiles (tests/check_readme).
add_test(NAME readme_snippets COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/check_readme
  ${PROJECT_SOURCE_DIR}/README.md ${CMAKE_C_COMPILER}
  ${PROJECT_SOURCE_DIR}/runtime/include ${PROJECT_SOURCE_DIR}/examples)
set_tests_properties(readme_snippets PROPERTIES LABELS docs TIMEOUT 120)

# The randomized model-based tester (tests/fuzz/fuzz_model.c): random
# programs from consecutive seeds, as threads and as pool tasks, for
# KANAL_STRESS_SECONDS (tools/test --long: minutes).
kanal_test(fuzz_model ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_model.c
  ARGS --seconds ${KANAL_STRESS_SECONDS} LABEL stress TIMEOUT 1800)

# The internal include graph follows the layer order (tools/check-layers).
add_test(NAME layers COMMAND ${PROJECT_SOURCE_DIR}/tools/check-layers
  ${PROJECT_SOURCE_DIR}/runtime/src)
set_tests_properties(layers PROPERTIES LABELS docs TIMEOUT 60)

# The optimized library holds no function that nothing refers to (an
# unused out-of-line copy of a function every use of which was inlined:
# tools/check-dead-copies), where its objects are the shipped ones.
find_program(KANAL_OBJDUMP objdump)
if(CMAKE_BUILD_TYPE STREQUAL "Release" AND NOT KANAL_SANITIZE AND NOT KANAL_FAULT AND
   KANAL_OBJDUMP)
  add_test(NAME dead_copies COMMAND ${PROJECT_SOURCE_DIR}/tools/check-dead-copies
    $<TARGET_OBJECTS:kanal_objects> COMMAND_EXPAND_LISTS)
  set_tests_properties(dead_copies PROPERTIES LABELS docs TIMEOUT 300)
endif()
