# Per-target defaults: warnings and the optional sanitizer set. Never global flags.
function(ingest_target_defaults target)
  if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic)
    if(INGEST_SANITIZE)
      target_compile_options(${target} PRIVATE -fsanitize=${INGEST_SANITIZE} -fno-omit-frame-pointer)
      target_link_options(${target} PUBLIC $<BUILD_INTERFACE:-fsanitize=${INGEST_SANITIZE}>)
      if(INGEST_SANITIZE MATCHES "thread" AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
        # Asio's fenced blocks use atomic_thread_fence, which GCC flags under TSan.
        target_compile_options(${target} PRIVATE -Wno-tsan)
      endif()
    endif()
  endif()
endfunction()
