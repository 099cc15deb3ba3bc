#pragma once
// The server process as /proc shows it: peak memory and CPU time, sampled around the flood.

namespace spike {

struct proc_sample {
  long peak_rss_kib = -1;
  long rss_kib = -1;  // resident now
  double cpu_seconds = -1;
};

// Nothing known (-1) for `pid` <= 0.
proc_sample sample_process(int pid);

}  // namespace spike
