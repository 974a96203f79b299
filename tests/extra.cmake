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
