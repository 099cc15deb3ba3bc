#pragma once
// What the command line asks of one run of spike, and what that makes of the run.

#include <string>
#include <vector>

#include "jwt.hpp"

namespace spike {

struct settings {
  // The servers; students are spread over them, and a retry after a connection error
  // goes to the next one (as a load balancer would send it).
  std::vector<std::string> urls{"http://127.0.0.1:8081"};
  std::string exam = "demo";
  int students = 10000;
  double window_s = 1.0;
  double double_click = 0.05;
  double click_again_s = 0.03;  // from a student's first click to the second
  double timeout_s = 10;
  int retries = 3;
  double rate = 0;  // > 0: open-loop mode
  double duration_s = 10;
  double burst_rate = 0;  // open loop: this rate for the first burst_s seconds, then `rate`
  double burst_s = 0;
  int connections = 1000;  // open-loop pool
  int threads = 1;
  std::string secret;
  exam::token_checks jwt{};
  std::string db;
  int server_pid = 0;
  double drain_timeout_s = 300;
  std::string json_out, svg_out, label;
  int questions = 10;
  int attachments = 0;       // files each submission names (references the server checks; no bytes are sent)
  bool one_student = false;  // every submission from the same student (an abusive client)
  std::string bind;          // local address to connect from (e.g. 127.0.0.2: another client IP)
  double poll_rate = 0;      // status reads per second during the flood (0: none)
  int poll_connections = 32;
  int streams = 0;  // students following their status over event streams during the flood
};

// One run, as the settings make it.
struct run_plan {
  bool open_loop = false;  // --rate given
  int n = 0;               // submissions (open loop) or students (wall)
  int burst_n = 0;         // open loop: the first burst_n at settings::burst_rate
  std::string run;         // this run's id
  std::string prefix;      // of every key of this run
};

}  // namespace spike
