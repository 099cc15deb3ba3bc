#pragma once
// Running a server: io threads, the signal that starts a graceful drain.

#include <boost/asio/io_context.hpp>
#include <functional>
#include <thread>
#include <vector>

namespace exam {

// First thing in each example's main: process-wide settings that must come before
// anything opens an SQLite database (SQLite's memory statistics off: one global
// allocator mutex less for the database threads).
void prepare_process();

// Runs `io` on `threads` threads until SIGINT/SIGTERM, then calls `drain` on the
// calling thread while the io threads keep serving (in-flight answers still go out),
// then stops `io` and joins. Returns drain's exit code.
int run_until_signal(boost::asio::io_context& io, unsigned threads, const std::function<int()>& drain);

}  // namespace exam
