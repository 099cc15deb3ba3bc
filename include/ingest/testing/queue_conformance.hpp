#pragma once
/// @file
/// The conformance suite every `durable_queue` backend runs (doctest): the library's
/// own backends, and one written for another broker. Part of the `ingest::testing`
/// component (header-only; link `ingest::testing`, which brings doctest).
///
/// A backend joins by defining a factory type and applying the suite to it, in one
/// test source (the suite's three parts are test-case templates; the macro applies
/// them all):
///
/// ```cpp
/// #include <ingest/testing/queue_conformance.hpp>
/// using namespace ingest::testing;
///
/// struct my_backend {
///   static constexpr const char* name = "mine";
///   explicit my_backend(boost::asio::any_io_executor ex);
///   // Opens the queue; for a durable backend a second open reaches the same storage.
///   std::unique_ptr<ingest::durable_queue> open(std::chrono::milliseconds visibility_timeout);
///   // What the backend must claim with the options `open` uses: pinned, so that a
///   // backend that stops claiming a feature fails instead of skipping its tests.
///   ingest::queue_features expected_features() const;
/// };
/// INGEST_QUEUE_CONFORMANCE(std::tuple<my_backend>);
/// ```
///
/// What a backend cannot do is read from its `features()`; every test that depends on
/// a feature checks it, so a backend is held to exactly what it claims, and the first
/// test holds the claims to the factory's pinned list. The suite uses real time (leases
/// of a few hundred milliseconds, waits of up to 20 s); give it a test timeout of
/// minutes, not seconds.

#include "ingest/testing/queue_conformance_dead_letters.hpp"
#include "ingest/testing/queue_conformance_delivery.hpp"
#include "ingest/testing/queue_conformance_publish.hpp"

/// Applies every part of the conformance suite to the backend factories in `...` (a
/// `std::tuple` of them). Use it at namespace scope, where `ingest::testing` is visible
/// (`using namespace ingest::testing;`).
#define INGEST_QUEUE_CONFORMANCE(...)                                       \
  TEST_CASE_TEMPLATE_APPLY(ingest_queue_conformance_publish, __VA_ARGS__);  \
  TEST_CASE_TEMPLATE_APPLY(ingest_queue_conformance_delivery, __VA_ARGS__); \
  TEST_CASE_TEMPLATE_APPLY(ingest_queue_conformance_dead_letters, __VA_ARGS__)
