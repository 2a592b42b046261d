package queue

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/riverqueue/river"

	"github.com/diffute/diffute/store"
)

// Inference is the policy of inference jobs that the store applies inside the
// transaction that submits them: River's attempts, and each model's queue.
// Open the store with it (store.Options.Inference) and build the queue on that
// store, so that jobs go where this queue's workers fetch.
var Inference = store.InferencePolicy{MaxAttempts: InferenceMaxAttempts, Queue: InferenceQueueFor}

// InferenceMaxAttempts is how many times River runs an inference job before giving
// up. Engine errors fail the job at once; these attempts cover interruptions
// (crashes, shutdowns) and transient storage errors.
const InferenceMaxAttempts = 5

// InferenceQueueFor is the queue inference jobs for model go to. Where one
// process works the database (not sharedByWorkers: SQLite) it works every job,
// so they all share River's default queue (one producer fewer polling the
// single connection); where many workers share it, each model has its own
// (InferenceQueue), so that a worker takes only the models it serves.
func InferenceQueueFor(model string, sharedByWorkers bool) string {
	if !sharedByWorkers {
		return river.QueueDefault
	}
	return InferenceQueue(model)
}

// InferenceQueue is the River queue of inference jobs for model when workers share the database. Each model has
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
