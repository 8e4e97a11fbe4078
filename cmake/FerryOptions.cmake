# Compiler flags shared by every Ferry target, through the ferry_options interface library.
add_library(ferry_options INTERFACE)
target_compile_options(ferry_options INTERFACE -Wall -Wextra -Wpedantic -Wno-missing-field-initializers)
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  # GCC 12 false positive on Asio's coroutine frame allocator (operator new/delete of
  # awaitable_frame_base) once optimising: GCC bug 109224.
  # Its flow-based warnings also fire inside libstdc++ (std::regex, std::function) and yaml-cpp
  # headers once optimising (-O1 and up): false positives we cannot fix at the source.
  target_compile_options(ferry_options INTERFACE -Wno-mismatched-new-delete
                                                 -Wno-maybe-uninitialized -Wno-dangling-pointer)
endif()
if(FERRY_WERROR)
  target_compile_options(ferry_options INTERFACE -Werror)
endif()
if(FERRY_SANITIZE)
  target_compile_options(ferry_options INTERFACE -fsanitize=${FERRY_SANITIZE} -fno-omit-frame-pointer
                                                 -fno-sanitize-recover=all)
  target_link_options(ferry_options INTERFACE -fsanitize=${FERRY_SANITIZE})
  # clang 14's -fsanitize=function (part of `undefined`, clang only) fails to compile coroutine
  # code ("Cannot represent a difference across sections", e.g. upstream/stream_pool.cpp).
  if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang" AND FERRY_SANITIZE MATCHES "undefined")
    target_compile_options(ferry_options INTERFACE -fno-sanitize=function)
  endif()
endif()
target_include_directories(ferry_options INTERFACE ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR}/include)
target_compile_definitions(ferry_options INTERFACE FERRY_VERSION="${PROJECT_VERSION}")

# Asio is compiled once (src/runtime/asio_impl.cpp) instead of in every translation unit that
# includes it; keep Asio headers out of widely included headers all the same.
# Each thread keeps up to 8 freed blocks per purpose (coroutine frames, handlers) for reuse
# instead of Asio's 2: a bus publish has about six coroutine frames alive at once, and with 2
# most of them went to malloc (callgrind: -1.4% instructions per publish, memalign gone). It
# changes Asio's thread_info_base, so every translation unit that includes Asio must get it:
# they do, through this target.
add_library(ferry_asio INTERFACE)
target_compile_definitions(ferry_asio INTERFACE BOOST_ASIO_SEPARATE_COMPILATION BOOST_ASIO_NO_DEPRECATED
                                                BOOST_ASIO_DISABLE_BOOST_COROUTINE
                                                BOOST_ASIO_RECYCLING_ALLOCATOR_CACHE_SIZE=8)
target_link_libraries(ferry_asio INTERFACE Boost::headers Threads::Threads)

# Coverage instrumentation for libFuzzer in every library a fuzz target links.
if(FERRY_FUZZ)
  target_compile_options(ferry_options INTERFACE -fsanitize=fuzzer-no-link)
endif()
