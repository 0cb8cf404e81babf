// The suite's own origin server (server/server.mjs of http-cache-tests),
// bound to loopback only on a port the kernel picks. The suite's server calls
// `server.listen(port)`, which binds every interface; this wrapper makes a
// bare port listen on 127.0.0.1 and asks for port 0, then prints the line
// the suite prints ("Listening on http://127.0.0.1:PORT/"), which
// scripts/cache-tests reads.
//
// usage: node origin.mjs SUITE_DIR PIDFILE
import http from 'http'
import path from 'path'
import process from 'process'
import { pathToFileURL } from 'url'

const [suiteDir, pidfile] = process.argv.slice(2)
if (!suiteDir || !pidfile) {
  console.error('usage: node origin.mjs SUITE_DIR PIDFILE')
  process.exit(2)
}

const listen = http.Server.prototype.listen
http.Server.prototype.listen = function (...args) {
  if (args.length === 1 && (typeof args[0] === 'number' || typeof args[0] === 'string')) {
    return listen.call(this, Number(args[0]), '127.0.0.1')
  }
  return listen.apply(this, args)
}

// server.mjs reads its settings as `npm run server` would pass them.
process.env.npm_config_protocol = 'http'
process.env.npm_config_port = '0'
process.env.npm_config_pidfile = pidfile
// handle-file.mjs serves files relative to the working directory.
process.chdir(suiteDir)
await import(pathToFileURL(path.join(suiteDir, 'server', 'server.mjs')).href)
