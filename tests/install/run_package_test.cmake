# Builds the library alone with the CMake options a package recipe passes (Conan's
# conanfile.py, vcpkg's ports/ingest), installs it into a scratch prefix, then builds
# and runs test_package/ against that prefix with find_package(ingest).
#   -DSOURCE_DIR= -DWORK_DIR= -DGENERATOR= -DCONFIG= -DLAUNCHER= -DRECIPE_OPTIONS="-DA=1;-DB=2"
cmake_minimum_required(VERSION 3.21)

file(REMOVE_RECURSE ${WORK_DIR})
set(prefix ${WORK_DIR}/prefix)

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
endfunction()

set(launcher)
if(LAUNCHER)
  set(launcher -DCMAKE_CXX_COMPILER_LAUNCHER=${LAUNCHER})
endif()
run(${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${WORK_DIR}/build -G ${GENERATOR} -DCMAKE_BUILD_TYPE=${CONFIG} ${launcher}
    -DINGEST_BUILD_TESTS=OFF -DINGEST_BUILD_EXAMPLES=OFF -DINGEST_BUILD_BENCHMARKS=OFF ${RECIPE_OPTIONS})
run(${CMAKE_COMMAND} --build ${WORK_DIR}/build)
run(${CMAKE_COMMAND} --install ${WORK_DIR}/build --prefix ${prefix})
run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/test_package -B ${WORK_DIR}/test_package -G ${GENERATOR}
    -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_BUILD_TYPE=${CONFIG} ${launcher})
run(${CMAKE_COMMAND} --build ${WORK_DIR}/test_package)
run(${WORK_DIR}/test_package/test_package)
message(STATUS "package test passed with ${RECIPE_OPTIONS}")
