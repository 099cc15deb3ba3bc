// Starts the fauxqs SQS emulator on 127.0.0.1 only (fauxqs's own startFauxqs() and its
// command line listen on every address), for the tests and benchmarks.
//
//   node tests/sqs/fauxqs.mjs [--port N]      (0 or none: a free port)
//
// Prints "listening 127.0.0.1:<port>" once ready; stops on SIGTERM or SIGINT.
import { buildApp } from "fauxqs";

const args = process.argv.slice(2);
let port = 0;
for (let i = 0; i < args.length; ++i) {
  if (args[i] === "--port") port = Number.parseInt(args[++i], 10);
  else {
    console.error(`fauxqs.mjs: unknown argument ${args[i]}`);
    process.exit(2);
  }
}

const app = buildApp({ logger: false, host: "127.0.0.1" });
const address = await app.listen({ port, host: "127.0.0.1" });
console.log(`listening ${new URL(address).host}`);

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  await app.close();
  process.exit(0);
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
