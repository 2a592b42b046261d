package store

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/riverqueue/river"
)

// InferenceQueueFor is the queue inference jobs for model go to on db. On SQLite
// one process works every job of the file, so they all share River's default
// queue (one producer fewer polling the single connection); on PostgreSQL each
// model has its own (InferenceQueue).
func (db *DB) InferenceQueueFor(model string) string {
	if db.dialect == SQLite {
		return river.QueueDefault
	}
	return InferenceQueue(model)
}

// InferenceQueue is the River queue of inference jobs for model on PostgreSQL. Each model has
// its own queue so that a worker subscribes only to the models it serves and never
// takes a job it cannot run. River wants queue names of lower-case letters and
// digits joined by single '-' or '_', at most 64 bytes, while model names are
// case-sensitive Hugging Face repo names ("org/name-1.0"): the name is a readable
// form of the model plus a hash of the exact name, so that two models never share
// a queue.
func InferenceQueue(model string) string {
	sum := sha256.Sum256([]byte(model))
	suffix := hex.EncodeToString(sum[:5])
	var b strings.Builder
	dash := true // no leading separator
	for _, r := range strings.ToLower(model) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			dash = false
		} else if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	readable := strings.TrimRight(b.String(), "-")
	const prefix = "inference_"
	if room := 64 - len(prefix) - 1 - len(suffix); len(readable) > room {
		readable = strings.TrimRight(readable[:room], "-")
	}
	if readable == "" {
		return prefix + suffix
	}
	return prefix + readable + "_" + suffix
}
