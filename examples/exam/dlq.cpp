#include "dlq.hpp"

#include <boost/asio/use_future.hpp>
#include <ostream>

#include "ingest/envelope.hpp"

namespace exam {

namespace {

void print_line(std::ostream& out, const ingest::dead_letter& d) {
  out << d.message.receipt_id << "  " << ingest::format_time(d.dead_lettered_at) << "  attempts " << d.attempts << "  "
      << d.reason << "  key " << d.message.idempotency_key << "\n";
}

void print_whole(std::ostream& out, const ingest::dead_letter& d) {
  out << "receipt_id:       " << d.message.receipt_id << "\n"
      << "idempotency_key:  " << d.message.idempotency_key << "\n"
      << "subject:          " << d.message.subject << "\n"
      << "accepted_at:      " << ingest::format_time(d.message.accepted_at) << "\n"
      << "reason:           " << d.reason << "\n"
      << "last_error:       " << d.last_error << "\n"
      << "attempts:         " << d.attempts << "\n"
      << "first_attempt_at: " << ingest::format_time(d.first_attempt_at) << "\n"
      << "last_attempt_at:  " << ingest::format_time(d.last_attempt_at) << "\n"
      << "dead_lettered_at: " << ingest::format_time(d.dead_lettered_at) << "\n";
  for (const auto& [k, v] : d.message.headers) out << "header:           " << k << ": " << v << "\n";
  out << "payload:          " << d.message.payload << "\n";
}

}  // namespace

CLI::App* add_dlq_command(CLI::App& cli, dlq_request& dlq) {
  auto* cmd = cli.add_subcommand("dlq", "inspect the dead letters: list, show, replay, purge");
  cmd->fallthrough();  // --queue and --data may follow the action
  cmd->add_option("action", dlq.action, "list | show | replay | purge")
      ->required()
      ->check(CLI::IsMember({"list", "show", "replay", "purge"}));
  cmd->add_option("receipts", dlq.receipts, "receipt ids (show, replay, purge)");
  cmd->add_flag("--all", dlq.all, "replay or purge every dead letter");
  cmd->add_option("--after", dlq.after, "list: start after this receipt id");
  cmd->add_option("--limit", dlq.limit, "list: at most this many")->capture_default_str();
  return cmd;
}

int run_dlq(ingest::durable_queue& queue, const dlq_request& r, std::ostream& out, std::ostream& err,
            submission_reader* notes) {
  using boost::asio::use_future;
  try {
    if (r.action == "list") {
      auto letters = queue.async_dead_letters(r.after, r.limit, use_future).get();
      for (const auto& d : letters) print_line(out, d);
      out << letters.size() << " dead letter(s)" << (letters.size() == r.limit ? " (more: --after the last one)" : "")
          << "\n";
      return 0;
    }
    if (r.action == "show") {
      if (r.receipts.size() != 1) {
        err << "dlq show: give one receipt id\n";
        return 2;
      }
      // Receipt ids are time-ordered: list from just below the one asked for.
      const auto& id = r.receipts.front();
      std::string after = id;
      after.back() = static_cast<char>(after.back() - 1);
      for (const auto& d : queue.async_dead_letters(after, 16, use_future).get())
        if (d.message.receipt_id == id) {
          print_whole(out, d);
          return 0;
        }
      err << "dlq show: no dead letter " << id << "\n";
      return 1;
    }
    if (r.action == "replay" || r.action == "purge") {
      if (r.receipts.empty() != r.all) {
        err << "dlq " << r.action << ": give receipt ids, or --all\n";
        return 2;
      }
      const auto at = ingest::format_time(ingest::clock::now());
      const auto n = r.action == "replay" ? queue.async_replay(r.receipts, use_future).get()
                                          : queue.async_purge(r.receipts, use_future).get();
      if (notes) {
        if (r.all)
          notes->forget_dead_letters(at);
        else
          for (const auto& id : r.receipts) notes->forget_dead_letter(id, at);
      }
      out << (r.action == "replay" ? "replayed " : "purged ") << n << " dead letter(s)\n";
      return 0;
    }
    err << "dlq: unknown action '" << r.action << "' (list, show, replay, purge)\n";
    return 2;
  } catch (const std::exception& e) {
    err << "dlq " << r.action << ": " << e.what() << "\n";
    return 2;
  }
}

}  // namespace exam
