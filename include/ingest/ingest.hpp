#pragma once
/// @file
/// Umbrella header of `ingest::core`. Backend headers are included separately
/// (e.g. `ingest/sqlite/idempotency_store.hpp`).

#include "ingest/auditor.hpp"
#include "ingest/batching_consumer.hpp"
#include "ingest/dead_letter_policy.hpp"
#include "ingest/durable_queue.hpp"
#include "ingest/envelope.hpp"
#include "ingest/error.hpp"
#include "ingest/fingerprint.hpp"
#include "ingest/idempotency_store.hpp"
#include "ingest/log.hpp"
#include "ingest/memory_queue.hpp"
#include "ingest/metrics.hpp"
#include "ingest/partitioned_queue.hpp"
#include "ingest/producer.hpp"
#include "ingest/receipt_signer.hpp"
#include "ingest/reconciler.hpp"
#include "ingest/retry_policy.hpp"
#include "ingest/rollout.hpp"
#include "ingest/shadow_producer.hpp"
#include "ingest/version.hpp"
