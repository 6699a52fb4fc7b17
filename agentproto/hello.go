package agentproto

import (
	"bytes"
	"slices"
)

// Connection handshake. A host that connects to the agent's port cannot
// know what the agent last read: a previous host may have died mid-frame,
// and the agent may not even have noticed the disconnect (QEMU reports a
// quick close and reopen as two events the guest can miss). So every
// connection starts with Hello: 8 bytes 0xff (an invalid yamux header, which
// ends any session the agent still runs), a magic word and a nonce. The
// agent resynchronizes on the magic and answers Ready with the same nonce;
// the host discards everything before that answer. Only then do both sides
// start yamux. A host that gets no answer in time dials again.

// NonceLen is the length of a handshake nonce (hex digits).
const NonceLen = 16

// HelloMagic returns the bytes that start a Hello. It is built at run time
// so that the agent binary itself does not contain it (copying the binary
// into a box must not look like a new connection).
func HelloMagic() []byte {
	word := []byte("OLLEH-NURXOB") // reversed
	slices.Reverse(word)
	return append(bytes.Repeat([]byte{0xff}, 8), word...)
}

// Hello returns the host's handshake: HelloMagic and nonce.
func Hello(nonce string) []byte {
	return append(HelloMagic(), nonce...)
}

// Ready returns the agent's answer to the Hello with nonce.
func Ready(nonce string) []byte {
	return []byte("BOXRUN-READY-" + nonce + "\n")
}
