//===- HandleRegistry.h - live C API handles and calls in flight -*- C++ -*-===//
//
// Part of FlashMLIR.
//
// The C APIs (libflashmlir_c's flashmlir_cpu_kernels, libflashmlir_rt's
// fa_runtime) hand out raw pointers that several threads may share. A
// registry of the live handles makes their use from several threads safe:
//   * every call enters the registry first (HandleCall); a handle that is
//     not live (destroyed, being destroyed, or never made) is refused with
//     an error instead of touching freed memory;
//   * destroying a handle first refuses new calls, then waits until the
//     calls already running on it have returned, and only then frees it.
// (A pointer whose memory was reused for a new handle is that new handle:
// the C APIs cannot tell it from the old one. The Python package never
// reuses a closed handle.)
//
// C++17, header-only, no MLIR or LLVM (the runtime half includes it).
//
//===----------------------------------------------------------------------===//

#ifndef FLASHMLIR_RUNTIME_HANDLEREGISTRY_H
#define FLASHMLIR_RUNTIME_HANDLEREGISTRY_H

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <unordered_map>

namespace flashmlir {

class HandleRegistry {
public:
  /// Makes `h` live.
  void add(const void *h) {
    std::lock_guard<std::mutex> lock(mu);
    handles[h] = State();
  }

  /// Starts a call on `h`; false when `h` is not live (or closing).
  bool enter(const void *h) {
    std::lock_guard<std::mutex> lock(mu);
    auto it = handles.find(h);
    if (it == handles.end() || it->second.closing)
      return false;
    ++it->second.calls;
    return true;
  }

  /// Ends a call started by a successful enter(h).
  void leave(const void *h) {
    std::lock_guard<std::mutex> lock(mu);
    auto it = handles.find(h);
    if (it != handles.end() && --it->second.calls == 0)
      idle.notify_all();
  }

  /// Refuses new calls on `h`, waits for the running ones and forgets it.
  /// False when `h` is not live (or another thread is removing it): the
  /// caller must then not free it.
  bool remove(const void *h) {
    std::unique_lock<std::mutex> lock(mu);
    auto it = handles.find(h);
    if (it == handles.end() || it->second.closing)
      return false;
    it->second.closing = true;
    idle.wait(lock, [&] { return handles[h].calls == 0; });
    handles.erase(h);
    return true;
  }

  /// Whether `h` is live (not destroyed or being destroyed).
  bool live(const void *h) {
    std::lock_guard<std::mutex> lock(mu);
    auto it = handles.find(h);
    return it != handles.end() && !it->second.closing;
  }

private:
  struct State {
    int64_t calls = 0;
    bool closing = false;
  };
  std::mutex mu;
  std::condition_variable idle;
  std::unordered_map<const void *, State> handles;
};

/// One call on a handle of `registry`: entered while it lives.
class HandleCall {
public:
  HandleCall(HandleRegistry &registry, const void *h)
      : registry(registry), h(h), entered(h && registry.enter(h)) {}
  ~HandleCall() {
    if (entered)
      registry.leave(h);
  }
  HandleCall(const HandleCall &) = delete;
  HandleCall &operator=(const HandleCall &) = delete;
  /// False: the handle is not live; the call must not touch it.
  bool ok() const { return entered; }

private:
  HandleRegistry &registry;
  const void *h;
  bool entered;
};

} // namespace flashmlir

#endif // FLASHMLIR_RUNTIME_HANDLEREGISTRY_H
