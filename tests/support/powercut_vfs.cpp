#include "support/powercut_vfs.hpp"

#include <sqlite3.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <stdexcept>
#include <vector>

namespace ingest::test::powercut {
namespace {

// What a disk would hold of one file after a power cut, and what is still pending.
struct file_image {
  std::string durable;  // contents as of the last sync
  struct change {
    bool truncate = false;
    std::int64_t offset = 0;  // or the new size, for a truncate
    std::string data;
  };
  std::vector<change> pending;
  bool exists = true;
  std::string path;
};

struct state {
  std::mutex mutex;
  std::string dir;
  bool tracking = false;
  bool cut = false;
  std::string unsynced_suffix;  // syncs of such files do nothing (a negative control)
  std::uint64_t cut_countdown = 0;  // 0: not armed
  std::map<std::string, file_image> files;
  counters count;
};

state& shared() {
  static state s;
  return s;
}

sqlite3_vfs* real_vfs = nullptr;

struct shim_file {
  sqlite3_file base;
  sqlite3_file* real;
  file_image* image;  // null: untracked
};

sqlite3_file* real_of(sqlite3_file* f) {
  return reinterpret_cast<shim_file*>(f)->real;
}

// Counts one tracked operation towards an armed cut. Caller holds the mutex.
void tick(state& s) {
  if (s.cut_countdown > 0 && --s.cut_countdown == 0) s.cut = true;
}

// Makes the first `n` pending changes durable: those that completed before the sync
// began (one still being written during an fsync is not taken to be on the disk).
void apply(file_image& image, std::size_t n) {
  for (std::size_t i = 0; i < n && i < image.pending.size(); ++i) {
    auto& c = image.pending[i];
    if (c.truncate) {
      image.durable.resize(static_cast<std::size_t>(c.offset));
      continue;
    }
    const auto end = static_cast<std::size_t>(c.offset) + c.data.size();
    if (image.durable.size() < end) image.durable.resize(end, '\0');
    std::memcpy(image.durable.data() + c.offset, c.data.data(), c.data.size());
  }
  image.pending.erase(image.pending.begin(),
                      image.pending.begin() + static_cast<std::ptrdiff_t>(std::min(n, image.pending.size())));
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return !suffix.empty() && s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string read_whole(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// ---- file methods: every call passes through; writes, truncates and syncs are noted --

int x_close(sqlite3_file* f) {
  auto* real = real_of(f);
  const int rc = real->pMethods ? real->pMethods->xClose(real) : SQLITE_OK;
  return rc;
}
int x_read(sqlite3_file* f, void* p, int n, sqlite3_int64 off) {
  return real_of(f)->pMethods->xRead(real_of(f), p, n, off);
}
// A write or truncate joins the pending changes once it is done (in the page cache).
int x_write(sqlite3_file* f, const void* p, int n, sqlite3_int64 off) {
  auto* sf = reinterpret_cast<shim_file*>(f);
  const int rc = sf->real->pMethods->xWrite(sf->real, p, n, off);
  if (sf->image && rc == SQLITE_OK) {
    auto& s = shared();
    std::lock_guard lock(s.mutex);
    tick(s);
    ++s.count.writes;
    if (!s.cut) sf->image->pending.push_back({false, off, std::string(static_cast<const char*>(p), n)});
  }
  return rc;
}
int x_truncate(sqlite3_file* f, sqlite3_int64 size) {
  auto* sf = reinterpret_cast<shim_file*>(f);
  const int rc = sf->real->pMethods->xTruncate(sf->real, size);
  if (sf->image && rc == SQLITE_OK) {
    auto& s = shared();
    std::lock_guard lock(s.mutex);
    tick(s);
    if (!s.cut) sf->image->pending.push_back({true, size, {}});
  }
  return rc;
}
// A sync makes durable what was done before it began, and only if the power holds
// until it returns.
int x_sync(sqlite3_file* f, int flags) {
  auto* sf = reinterpret_cast<shim_file*>(f);
  std::size_t before = 0;
  if (sf->image) {
    auto& s = shared();
    std::lock_guard lock(s.mutex);
    before = sf->image->pending.size();
  }
  const int rc = sf->real->pMethods->xSync(sf->real, flags);
  if (sf->image && rc == SQLITE_OK) {
    auto& s = shared();
    std::lock_guard lock(s.mutex);
    tick(s);  // a cut here falls during the fsync: it does not count
    ++s.count.syncs;
    if (s.cut)
      ++s.count.syncs_after_cut;
    else if (!ends_with(sf->image->path, s.unsynced_suffix))
      apply(*sf->image, before);
  }
  return rc;
}
int x_file_size(sqlite3_file* f, sqlite3_int64* size) {
  return real_of(f)->pMethods->xFileSize(real_of(f), size);
}
int x_lock(sqlite3_file* f, int level) {
  return real_of(f)->pMethods->xLock(real_of(f), level);
}
int x_unlock(sqlite3_file* f, int level) {
  return real_of(f)->pMethods->xUnlock(real_of(f), level);
}
int x_check_reserved(sqlite3_file* f, int* out) {
  return real_of(f)->pMethods->xCheckReservedLock(real_of(f), out);
}
int x_file_control(sqlite3_file* f, int op, void* arg) {
  return real_of(f)->pMethods->xFileControl(real_of(f), op, arg);
}
int x_sector_size(sqlite3_file* f) {
  return real_of(f)->pMethods->xSectorSize(real_of(f));
}
int x_device_characteristics(sqlite3_file* f) {
  return real_of(f)->pMethods->xDeviceCharacteristics(real_of(f));
}
int x_shm_map(sqlite3_file* f, int page, int size, int extend, void volatile** out) {
  return real_of(f)->pMethods->xShmMap(real_of(f), page, size, extend, out);
}
int x_shm_lock(sqlite3_file* f, int offset, int n, int flags) {
  return real_of(f)->pMethods->xShmLock(real_of(f), offset, n, flags);
}
void x_shm_barrier(sqlite3_file* f) {
  real_of(f)->pMethods->xShmBarrier(real_of(f));
}
int x_shm_unmap(sqlite3_file* f, int remove) {
  return real_of(f)->pMethods->xShmUnmap(real_of(f), remove);
}
int x_fetch(sqlite3_file* f, sqlite3_int64 off, int n, void** out) {
  return real_of(f)->pMethods->xFetch(real_of(f), off, n, out);
}
int x_unfetch(sqlite3_file* f, sqlite3_int64 off, void* p) {
  return real_of(f)->pMethods->xUnfetch(real_of(f), off, p);
}

const sqlite3_io_methods shim_methods = {
    3,         x_close,       x_read,      x_write,    x_truncate,         x_sync,
    x_file_size, x_lock,      x_unlock,    x_check_reserved, x_file_control, x_sector_size,
    x_device_characteristics, x_shm_map, x_shm_lock, x_shm_barrier, x_shm_unmap, x_fetch,
    x_unfetch};

// ---- VFS methods ------------------------------------------------------------------------

bool under(const std::string& dir, const char* name) {
  return name && !dir.empty() && std::strncmp(name, dir.c_str(), dir.size()) == 0;
}

int x_open(sqlite3_vfs*, sqlite3_filename name, sqlite3_file* f, int flags, int* out_flags) {
  auto* sf = reinterpret_cast<shim_file*>(f);
  sf->real = reinterpret_cast<sqlite3_file*>(sf + 1);
  sf->image = nullptr;
  const int rc = real_vfs->xOpen(real_vfs, name, sf->real, flags, out_flags);
  if (rc != SQLITE_OK || !sf->real->pMethods) {
    f->pMethods = nullptr;
    return rc;
  }
  f->pMethods = &shim_methods;
  auto& s = shared();
  std::lock_guard lock(s.mutex);
  if (s.tracking && under(s.dir, name)) {
    auto [it, added] = s.files.try_emplace(name);
    // A file first seen now holds on disk what it held before tracking began.
    if (added || !it->second.exists) {
      it->second = file_image{};
      it->second.path = name;
      if (added) it->second.durable = read_whole(name);
    }
    sf->image = &it->second;
  }
  return SQLITE_OK;
}

int x_delete(sqlite3_vfs*, const char* name, int sync_dir) {
  auto& s = shared();
  {
    std::lock_guard lock(s.mutex);
    if (s.tracking && under(s.dir, name)) {
      tick(s);
      // After the cut the deletion never reaches the disk: the file comes back.
      if (auto it = s.files.find(name); it != s.files.end() && !s.cut) {
        it->second.exists = false;
        it->second.durable.clear();
        it->second.pending.clear();
      }
    }
  }
  return real_vfs->xDelete(real_vfs, name, sync_dir);
}

int x_access(sqlite3_vfs*, const char* name, int flags, int* out) {
  return real_vfs->xAccess(real_vfs, name, flags, out);
}
int x_full_pathname(sqlite3_vfs*, const char* name, int n, char* out) {
  return real_vfs->xFullPathname(real_vfs, name, n, out);
}
void* x_dl_open(sqlite3_vfs*, const char* name) {
  return real_vfs->xDlOpen(real_vfs, name);
}
void x_dl_error(sqlite3_vfs*, int n, char* out) {
  real_vfs->xDlError(real_vfs, n, out);
}
void (*x_dl_sym(sqlite3_vfs*, void* handle, const char* sym))(void) {
  return real_vfs->xDlSym(real_vfs, handle, sym);
}
void x_dl_close(sqlite3_vfs*, void* handle) {
  real_vfs->xDlClose(real_vfs, handle);
}
int x_randomness(sqlite3_vfs*, int n, char* out) {
  return real_vfs->xRandomness(real_vfs, n, out);
}
int x_sleep(sqlite3_vfs*, int us) {
  return real_vfs->xSleep(real_vfs, us);
}
int x_current_time(sqlite3_vfs*, double* out) {
  return real_vfs->xCurrentTime(real_vfs, out);
}
int x_last_error(sqlite3_vfs*, int n, char* out) {
  return real_vfs->xGetLastError(real_vfs, n, out);
}
int x_current_time_int64(sqlite3_vfs*, sqlite3_int64* out) {
  return real_vfs->xCurrentTimeInt64(real_vfs, out);
}

sqlite3_vfs shim_vfs{};

}  // namespace

void install(const std::string& dir) {
  auto& s = shared();
  if (!real_vfs) {
    sqlite3_initialize();
    real_vfs = sqlite3_vfs_find("unix");
    if (!real_vfs) throw std::runtime_error("powercut: no unix VFS");
    shim_vfs.iVersion = 2;
    shim_vfs.szOsFile = static_cast<int>(sizeof(shim_file)) + real_vfs->szOsFile;
    shim_vfs.mxPathname = real_vfs->mxPathname;
    shim_vfs.zName = "powercut";
    shim_vfs.xOpen = x_open;
    shim_vfs.xDelete = x_delete;
    shim_vfs.xAccess = x_access;
    shim_vfs.xFullPathname = x_full_pathname;
    shim_vfs.xDlOpen = x_dl_open;
    shim_vfs.xDlError = x_dl_error;
    shim_vfs.xDlSym = x_dl_sym;
    shim_vfs.xDlClose = x_dl_close;
    shim_vfs.xRandomness = x_randomness;
    shim_vfs.xSleep = x_sleep;
    shim_vfs.xCurrentTime = x_current_time;
    shim_vfs.xGetLastError = x_last_error;
    shim_vfs.xCurrentTimeInt64 = x_current_time_int64;
    if (sqlite3_vfs_register(&shim_vfs, 1) != SQLITE_OK) throw std::runtime_error("powercut: register failed");
  }
  std::lock_guard lock(s.mutex);
  s.dir = dir;
  s.tracking = true;
  s.cut = false;
  s.cut_countdown = 0;
  s.unsynced_suffix.clear();
  s.files.clear();
  s.count = {};
}

void ignore_syncs_of(const std::string& suffix) {
  auto& s = shared();
  std::lock_guard lock(s.mutex);
  s.unsynced_suffix = suffix;
}

void cut() {
  auto& s = shared();
  std::lock_guard lock(s.mutex);
  s.cut = true;
}

void cut_at_operation(std::uint64_t n) {
  auto& s = shared();
  std::lock_guard lock(s.mutex);
  s.cut_countdown = n;
}

bool is_cut() {
  auto& s = shared();
  std::lock_guard lock(s.mutex);
  return s.cut;
}

counters stats() {
  auto& s = shared();
  std::lock_guard lock(s.mutex);
  return s.count;
}

void restore() {
  auto& s = shared();
  std::lock_guard lock(s.mutex);
  for (auto& [path, image] : s.files) {
    std::error_code ec;
    if (!image.exists) {
      std::filesystem::remove(path, ec);
      continue;
    }
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(image.durable.data(), static_cast<std::streamsize>(image.durable.size()));
    if (!out) throw std::runtime_error("powercut: could not restore " + path);
  }
  for (const auto& entry : std::filesystem::directory_iterator(s.dir)) {
    const auto name = entry.path().string();
    if (name.size() > 4 && name.compare(name.size() - 4, 4, "-shm") == 0) std::filesystem::remove(entry.path());
  }
  s.files.clear();
  s.tracking = false;
  s.cut = false;
  s.cut_countdown = 0;
}

}  // namespace ingest::test::powercut
