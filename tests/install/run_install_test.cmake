# Installs the build tree into a scratch prefix, then configures, builds and runs a
# separate project that finds it with find_package(ingest). Also checks that asking
# for a component this installation lacks fails at configure time.
cmake_minimum_required(VERSION 3.21)

set(prefix ${WORK_DIR}/prefix)
file(REMOVE_RECURSE ${WORK_DIR})

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
endfunction()

run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix} --config ${CONFIG})
if(NOT EXISTS ${prefix}/lib/cmake/ingest/ingestConfig.cmake AND NOT EXISTS ${prefix}/lib64/cmake/ingest/ingestConfig.cmake)
  message(FATAL_ERROR "no ingestConfig.cmake under ${prefix}")
endif()

run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/install/consumer -B ${WORK_DIR}/consumer -G ${GENERATOR}
    -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_BUILD_TYPE=${CONFIG})
run(${CMAKE_COMMAND} --build ${WORK_DIR}/consumer)
run(${WORK_DIR}/consumer/ingest_consumer)

# The conformance suite, installed with the testing component, run on a backend
# written outside the library.
if(WITH_TESTING)
  run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/install/conformance -B ${WORK_DIR}/conformance -G ${GENERATOR}
      -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_BUILD_TYPE=${CONFIG})
  run(${CMAKE_COMMAND} --build ${WORK_DIR}/conformance)
  run(${WORK_DIR}/conformance/my_backend_test)
endif()

execute_process(
  COMMAND ${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/install/consumer -B ${WORK_DIR}/missing -G ${GENERATOR}
          -DCMAKE_PREFIX_PATH=${prefix} -DINGEST_EXTRA_COMPONENT=no_such_backend
  RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
if(rc EQUAL 0)
  message(FATAL_ERROR "find_package(ingest COMPONENTS no_such_backend) succeeded")
endif()
message(STATUS "install test passed")
