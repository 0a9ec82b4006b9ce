//===- HostAsyncRuntime.cpp - the async runtime of the CPU kernels --------===//
//
// Part of FlashMLIR.
//
//===----------------------------------------------------------------------===//
//
// The semantics follow MLIR's reference runtime (mlir/lib/ExecutionEngine/
// AsyncRuntime.cpp): reference-counted tokens, values and groups whose
// awaiters run when they become available. What differs is the execution:
// a pool of FLASHMLIR_NUM_THREADS - 1 workers, and blocking waits that help
// with the queued tasks (see HostAsyncRuntime.h). The functions have C++
// names: the JIT gets them under the mlirAsyncRuntime* names through
// asyncRuntimeSymbols(), so nothing clashes with MLIR's own runtime library
// when both are in a process.
//
//===----------------------------------------------------------------------===//

#include "HostAsyncRuntime.h"

#include "flashmlir/runtime/Limits.h"

#include <cerrno>

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdlib>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#ifdef __linux__
#include <sched.h>
#endif

using namespace flashmlir::cpu;

namespace {

using CoroHandle = void *;
using CoroResume = void (*)(void *);

//===----------------------------------------------------------------------===//
// Thread pool
//===----------------------------------------------------------------------===//

/// FLASHMLIR_NUM_THREADS as a thread count; false when it is not set or
/// not an integer in [1, flashmlir::limits::kMaxThreads] (threadsEnvError says so).
bool envThreads(int64_t *out) {
  const char *env = std::getenv("FLASHMLIR_NUM_THREADS");
  if (!env || !*env)
    return false;
  errno = 0;
  char *end = nullptr;
  long long n = std::strtoll(env, &end, 10);
  if (errno != 0 || *end != '\0' || n < 1 || n > flashmlir::limits::kMaxThreads)
    return false;
  *out = n;
  return true;
}

int64_t defaultThreads() {
  // An invalid FLASHMLIR_NUM_THREADS is reported by CpuKernels::compile
  // (threadsEnvError) before any task runs; here it falls back to the CPUs.
  if (int64_t n = 0; envThreads(&n))
    return n;
#ifdef __linux__
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
    return CPU_COUNT(&set);
#endif
  unsigned n = std::thread::hardware_concurrency();
  return n ? n : 1;
}

class Pool {
public:
  explicit Pool(int64_t threads) : threads(threads) {
    for (int64_t i = 1; i < threads; ++i)
      std::thread([this] { work(); }).detach();
  }

  const int64_t threads;

  void enqueue(CoroHandle h, CoroResume r) {
    {
      std::lock_guard<std::mutex> lock(mu);
      queue.push_back({h, r});
    }
    cv.notify_one();
  }

  /// Runs one queued task on the calling thread; false when none is queued.
  bool runOne() {
    std::pair<CoroHandle, CoroResume> t;
    {
      std::lock_guard<std::mutex> lock(mu);
      if (queue.empty())
        return false;
      t = queue.front();
      queue.pop_front();
      ++running;
    }
    run(t);
    return true;
  }

  /// Blocks until no task is queued or running.
  void waitIdle() {
    std::unique_lock<std::mutex> lock(mu);
    idle.wait(lock, [&] { return queue.empty() && running == 0; });
  }

private:
  void work() {
    for (;;) {
      std::pair<CoroHandle, CoroResume> t;
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return !queue.empty(); });
        t = queue.front();
        queue.pop_front();
        ++running;
      }
      run(t);
    }
  }

  void run(std::pair<CoroHandle, CoroResume> t) {
    t.second(t.first);
    std::lock_guard<std::mutex> lock(mu);
    if (--running == 0 && queue.empty())
      idle.notify_all();
  }

  std::mutex mu;
  std::condition_variable cv, idle;
  std::deque<std::pair<CoroHandle, CoroResume>> queue;
  int64_t running = 0; ///< tasks being run (guarded by mu)
};

/// Never destroyed: its detached workers may outlive static destruction.
Pool &pool() {
  static Pool *p = new Pool(defaultThreads());
  return *p;
}

//===----------------------------------------------------------------------===//
// Reference-counted objects
//===----------------------------------------------------------------------===//

class RefCounted {
public:
  explicit RefCounted(int64_t refCount) : refCount(refCount) {}
  virtual ~RefCounted() = default;
  void addRef(int64_t n) { refCount.fetch_add(n); }
  void dropRef(int64_t n) {
    if (refCount.fetch_sub(n) == n)
      delete this;
  }

private:
  std::atomic<int64_t> refCount;
};

/// Something that becomes available (or an error) once, and then runs its
/// awaiters. Tokens and values start with two references: the caller's and
/// the one the producing task drops when it emplaces them.
struct Awaitable : RefCounted {
  using RefCounted::RefCounted;
  std::atomic<bool> ready{false}, error{false};
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::function<void()>> awaiters;

  void setReady(bool isError) {
    {
      std::lock_guard<std::mutex> lock(mu);
      error = isError;
      ready = true;
      cv.notify_all();
      for (auto &a : awaiters)
        a();
    }
    dropRef(1);
  }

  /// Blocks until ready, running queued tasks meanwhile.
  void await() {
    while (!ready) {
      if (pool().runOne())
        continue;
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return ready.load(); });
    }
  }

  void awaitAndExecute(CoroHandle h, CoroResume r) {
    std::unique_lock<std::mutex> lock(mu);
    if (ready) {
      lock.unlock();
      r(h);
      return;
    }
    awaiters.push_back([h, r] { r(h); });
  }
};

struct Token : Awaitable {
  Token() : Awaitable(2) {}
};

struct AsyncValue : Awaitable {
  explicit AsyncValue(int64_t size) : Awaitable(2), storage(size) {}
  std::vector<std::byte> storage;
};

struct Group : RefCounted {
  explicit Group(int64_t size) : RefCounted(1), pending(size) {}
  std::atomic<int64_t> pending, errors{0}, rank{0};
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::function<void()>> awaiters;

  /// Called with `mu` held.
  void onTokenReady(bool isError) {
    if (isError)
      errors.fetch_add(1);
    if (pending.fetch_sub(1) == 1) {
      cv.notify_all();
      for (auto &a : awaiters)
        a();
    }
  }

  void await() {
    while (pending.load() != 0) {
      if (pool().runOne())
        continue;
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return pending.load() == 0; });
    }
  }
};

//===----------------------------------------------------------------------===//
// The API (mlir/ExecutionEngine/AsyncRuntime.h)
//===----------------------------------------------------------------------===//

void addRef(void *p, int64_t n) { static_cast<RefCounted *>(p)->addRef(n); }
void dropRef(void *p, int64_t n) { static_cast<RefCounted *>(p)->dropRef(n); }
void *createToken() { return new Token(); }
void *createValue(int64_t size) { return new AsyncValue(size); }
void *createGroup(int64_t size) { return new Group(size); }

int64_t addTokenToGroup(void *tp, void *gp) {
  auto *token = static_cast<Token *>(tp);
  auto *group = static_cast<Group *>(gp);
  std::unique_lock<std::mutex> lockToken(token->mu);
  std::unique_lock<std::mutex> lockGroup(group->mu);
  int64_t rank = group->rank.fetch_add(1);
  if (token->ready) {
    group->onTokenReady(token->error);
  } else {
    // Keep the group alive until the token is ready.
    group->addRef(1);
    token->awaiters.push_back([group, token] {
      {
        std::lock_guard<std::mutex> lock(group->mu);
        group->onTokenReady(token->error);
      }
      group->dropRef(1);
    });
  }
  return rank;
}

void emplaceToken(void *t) { static_cast<Token *>(t)->setReady(false); }
void emplaceValue(void *v) { static_cast<AsyncValue *>(v)->setReady(false); }
void setTokenError(void *t) { static_cast<Token *>(t)->setReady(true); }
void setValueError(void *v) { static_cast<AsyncValue *>(v)->setReady(true); }
bool isTokenError(void *t) { return static_cast<Token *>(t)->error; }
bool isValueError(void *v) { return static_cast<AsyncValue *>(v)->error; }
bool isGroupError(void *g) { return static_cast<Group *>(g)->errors > 0; }
void awaitToken(void *t) { static_cast<Token *>(t)->await(); }
void awaitValue(void *v) { static_cast<AsyncValue *>(v)->await(); }
void awaitAllInGroup(void *g) { static_cast<Group *>(g)->await(); }
std::byte *getValueStorage(void *v) {
  return static_cast<AsyncValue *>(v)->storage.data();
}
void execute(CoroHandle h, CoroResume r) { pool().enqueue(h, r); }
void awaitTokenAndExecute(void *t, CoroHandle h, CoroResume r) {
  static_cast<Token *>(t)->awaitAndExecute(h, r);
}
void awaitValueAndExecute(void *v, CoroHandle h, CoroResume r) {
  static_cast<AsyncValue *>(v)->awaitAndExecute(h, r);
}
void awaitAllInGroupAndExecute(void *gp, CoroHandle h, CoroResume r) {
  auto *group = static_cast<Group *>(gp);
  std::unique_lock<std::mutex> lock(group->mu);
  if (group->pending == 0) {
    lock.unlock();
    r(h);
    return;
  }
  group->awaiters.push_back([h, r] { r(h); });
}
int64_t numWorkerThreads() { return pool().threads; }

} // namespace

int64_t flashmlir::cpu::asyncRuntimeThreads() { return pool().threads; }

std::string flashmlir::cpu::threadsEnvError() {
  const char *env = std::getenv("FLASHMLIR_NUM_THREADS");
  int64_t n = 0;
  if (!env || !*env || envThreads(&n))
    return "";
  return std::string("FLASHMLIR_NUM_THREADS = '") + env +
         "' is not an integer in [1, " + std::to_string(flashmlir::limits::kMaxThreads) +
         "]";
}

void flashmlir::cpu::waitForAsyncTasks() { pool().waitIdle(); }

std::vector<std::pair<const char *, void *>>
flashmlir::cpu::asyncRuntimeSymbols() {
  auto fn = [](auto *f) { return reinterpret_cast<void *>(f); };
  return {
      {"mlirAsyncRuntimeAddRef", fn(&addRef)},
      {"mlirAsyncRuntimeDropRef", fn(&dropRef)},
      {"mlirAsyncRuntimeCreateToken", fn(&createToken)},
      {"mlirAsyncRuntimeCreateValue", fn(&createValue)},
      {"mlirAsyncRuntimeCreateGroup", fn(&createGroup)},
      {"mlirAsyncRuntimeAddTokenToGroup", fn(&addTokenToGroup)},
      {"mlirAsyncRuntimeEmplaceToken", fn(&emplaceToken)},
      {"mlirAsyncRuntimeEmplaceValue", fn(&emplaceValue)},
      {"mlirAsyncRuntimeSetTokenError", fn(&setTokenError)},
      {"mlirAsyncRuntimeSetValueError", fn(&setValueError)},
      {"mlirAsyncRuntimeIsTokenError", fn(&isTokenError)},
      {"mlirAsyncRuntimeIsValueError", fn(&isValueError)},
      {"mlirAsyncRuntimeIsGroupError", fn(&isGroupError)},
      {"mlirAsyncRuntimeAwaitToken", fn(&awaitToken)},
      {"mlirAsyncRuntimeAwaitValue", fn(&awaitValue)},
      {"mlirAsyncRuntimeAwaitAllInGroup", fn(&awaitAllInGroup)},
      {"mlirAsyncRuntimeGetValueStorage", fn(&getValueStorage)},
      {"mlirAsyncRuntimeExecute", fn(&execute)},
      {"mlirAsyncRuntimeAwaitTokenAndExecute", fn(&awaitTokenAndExecute)},
      {"mlirAsyncRuntimeAwaitValueAndExecute", fn(&awaitValueAndExecute)},
      {"mlirAsyncRuntimeAwaitAllInGroupAndExecute",
       fn(&awaitAllInGroupAndExecute)},
      // (sic: the API's name lacks an 'e')
      {"mlirAsyncRuntimGetNumWorkerThreads", fn(&numWorkerThreads)},
  };
}
