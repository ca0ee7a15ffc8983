// Package archtest holds tests that keep banger's dependency directions
// honest; it has no code of its own.
package archtest
