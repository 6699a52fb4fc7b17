package boxrun

import "crypto/rand"

// idAlphabet is nanoid's default alphabet: IDs may contain '_' and '-'.
const idAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"

// newID returns prefix + 12 random characters from idAlphabet
// ("box_V1St-XR8_Z5j"). 64 symbols divide 256, so masking is unbiased.
func newID(prefix string) string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	out := make([]byte, 0, len(prefix)+len(b))
	out = append(out, prefix...)
	for _, c := range b {
		out = append(out, idAlphabet[c&63])
	}
	return string(out)
}
