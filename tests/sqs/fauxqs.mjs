// Starts the fauxqs SQS emulator on 127.0.0.1 only (fauxqs's own startFauxqs() and its
// command line listen on every address), for the tests and benchmarks.
//
//   node tests/sqs/fauxqs.mjs [--port N] [--tls-cert PEM --tls-key PEM] [--cors] [--bucket NAME]
//
// --port 0 or none: a free port. With a certificate it serves HTTPS (for the TLS path
// of the client), with fauxqs behind Node's own TLS server. --cors answers browsers'
// CORS preflights and marks answers readable from any origin, as a bucket's CORS rule
// does on S3 (fauxqs has no bucket CORS of its own): for the page tests that upload.
// --bucket makes that S3 bucket before the port opens (a restarted emulator is empty).
//
// Prints "listening 127.0.0.1:<port>" once ready; stops on SIGTERM or SIGINT.
import { readFileSync } from "node:fs";
import https from "node:https";
import { buildApp } from "fauxqs";

const args = process.argv.slice(2);
let port = 0;
let cert = "";
let key = "";
let cors = false;
let bucket = "";
for (let i = 0; i < args.length; ++i) {
  if (args[i] === "--port") port = Number.parseInt(args[++i], 10);
  else if (args[i] === "--tls-cert") cert = args[++i];
  else if (args[i] === "--tls-key") key = args[++i];
  else if (args[i] === "--cors") cors = true;
  else if (args[i] === "--bucket") bucket = args[++i];
  else {
    console.error(`fauxqs.mjs: unknown argument ${args[i]}`);
    process.exit(2);
  }
}

const app = buildApp({ logger: false, host: "127.0.0.1" });
if (cors) {
  app.addHook("onRequest", (req, reply, done) => {
    reply.header("access-control-allow-origin", req.headers.origin ?? "*");
    reply.header("access-control-expose-headers", "etag");
    if (req.method !== "OPTIONS") return done();
    reply.header("access-control-allow-methods", "GET, HEAD, PUT");
    reply.header("access-control-allow-headers", req.headers["access-control-request-headers"] ?? "content-type");
    reply.header("access-control-max-age", "600");
    reply.code(204).send();
  });
}
if (bucket) {
  const made = await app.inject({ method: "PUT", url: `/${bucket}` });
  if (made.statusCode !== 200) throw new Error(`fauxqs.mjs: bucket ${bucket}: HTTP ${made.statusCode}`);
}
let close;
if (cert) {
  await app.ready();
  const server = https.createServer({ cert: readFileSync(cert), key: readFileSync(key) }, (req, res) =>
    app.routing(req, res),
  );
  await new Promise((resolve) => server.listen(port, "127.0.0.1", resolve));
  console.log(`listening 127.0.0.1:${server.address().port}`);
  close = () => new Promise((resolve) => server.close(resolve));
} else {
  const address = await app.listen({ port, host: "127.0.0.1" });
  console.log(`listening ${new URL(address).host}`);
  close = () => app.close();
}

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  await close();
  process.exit(0);
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
