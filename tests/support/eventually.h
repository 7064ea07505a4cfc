// Waiting without fixed sleeps: poll a condition until it holds.
#pragma once

#include <chrono>
#include <functional>

namespace hs::test {

// Polls `cond` every millisecond until it holds or `limit` has passed (then
// one last look). True if it held.
bool eventually(const std::function<bool()>& cond, std::chrono::milliseconds limit = std::chrono::seconds(20));

// Milliseconds since t0 on the steady clock.
long long ms_since(std::chrono::steady_clock::time_point t0);

}  // namespace hs::test
