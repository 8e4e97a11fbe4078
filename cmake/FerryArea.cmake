# ferry_area(NAME [DEPS targets...])
# One static library per src/ area, from every .cpp in the folder except *_test.cpp, and one
# test executable (ferry_NAME_test) from the *_test.cpp files beside them, run by ctest.
function(ferry_area name)
  cmake_parse_arguments(ARG "" "" "DEPS;TEST_DEPS" ${ARGN})
  file(GLOB sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.cpp ${CMAKE_CURRENT_SOURCE_DIR}/*/*.cpp)
  set(tests ${sources})
  list(FILTER sources EXCLUDE REGEX "_test\\.cpp$")
  list(FILTER tests INCLUDE REGEX "_test\\.cpp$")
  add_library(ferry_${name} STATIC ${sources})
  target_link_libraries(ferry_${name} PUBLIC ferry_options ${ARG_DEPS})
  if(FERRY_BUILD_TESTS AND tests)
    add_executable(ferry_${name}_test ${tests})
    target_link_libraries(ferry_${name}_test PRIVATE ferry_${name} ${ARG_TEST_DEPS} GTest::gtest GTest::gmock
                                                     GTest::gtest_main)
    add_test(NAME unit.${name} COMMAND ferry_${name}_test)
    set_tests_properties(unit.${name} PROPERTIES TIMEOUT 300)
  endif()
endfunction()
