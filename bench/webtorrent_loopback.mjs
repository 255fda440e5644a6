// webtorrent-cli on loopback only, for bench/stream_bench.py.
//
//     node --import /path/to/bench/webtorrent_loopback.mjs node_modules/webtorrent-cli/bin/cmd.js ...
//
// The CLI itself runs unchanged; this preload changes three things before it starts:
//
// - Every TCP server that would listen on all interfaces (the CLI's HTTP server, the
//   client's peer listener) listens on 127.0.0.1 instead: the CLI has no option for it.
// - The CLI's `new WebTorrent(...)` gets dht, lsd, natUpnp, natPmp and utp switched off:
//   the CLI has no options for these either, and the DHT would look up its bootstrap
//   routers on the Internet, LSD and UPnP would multicast on the LAN. Peers then come only
//   from the magnet's x.pe, the trackers given (ours, on loopback) and PEX between them.
//   uTP off leaves TCP only, as the other clients of the benchmark use.
// - `webrtc-polyfill` (WebRTC peers, through node-datachannel) resolves to a stub with no
//   classes: node-datachannel is a native module whose install step downloads a binary
//   from GitHub, which this machine cannot reach, and the benchmark has no WebRTC peers.
//
// Hooks run in a loader thread of their own (module.register); the listen patch only
// matters in the main thread.

import { register } from 'node:module'
import net from 'node:net'
import { isMainThread } from 'node:worker_threads'

const LOOPBACK = '127.0.0.1'
const FORCED_OPTIONS = '{ dht: false, lsd: false, natUpnp: false, natPmp: false, utp: false }'
const WEBRTC_STUB = 'data:text/javascript,' + encodeURIComponent(
  'export const RTCPeerConnection = undefined\n' +
  'export const RTCSessionDescription = undefined\n' +
  'export const RTCIceCandidate = undefined\n' +
  'export default {}\n'
)

function clientModule (realUrl) {
  // A subclass whose constructor overrides the discovery options the CLI leaves at their defaults.
  return 'data:text/javascript,' + encodeURIComponent(
    `import WebTorrent from ${JSON.stringify(realUrl)}\n` +
    'export default class LoopbackWebTorrent extends WebTorrent {\n' +
    `  constructor (opts = {}) { super({ ...opts, ...${FORCED_OPTIONS} }) }\n` +
    '}\n'
  )
}

export async function resolve (specifier, context, nextResolve) {
  if (specifier === 'webrtc-polyfill') {
    return { url: WEBRTC_STUB, shortCircuit: true }
  }
  if (specifier === 'webtorrent' && context.parentURL && context.parentURL.includes('/webtorrent-cli/')) {
    const real = await nextResolve(specifier, context)
    return { url: clientModule(real.url), shortCircuit: true }
  }
  return nextResolve(specifier, context)
}

if (isMainThread) {
  const listen = net.Server.prototype.listen
  net.Server.prototype.listen = function (...args) {
    const [first, second] = args
    if (typeof first === 'number' || (typeof first === 'string' && /^\d+$/.test(first))) {
      // listen(port[, host][, backlog][, callback]): insert the host when none is given.
      if (typeof second !== 'string') args.splice(1, 0, LOOPBACK)
    } else if (first === undefined || typeof first === 'function') {
      args.unshift(0, LOOPBACK)
    } else if (typeof first === 'object' && first !== null && first.path === undefined && first.host === undefined) {
      args[0] = { ...first, host: LOOPBACK }
    }
    return listen.apply(this, args)
  }
  register(import.meta.url)
}
