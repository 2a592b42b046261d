package diffute

import (
	"crypto/rand"
	"encoding/binary"
	"time"
)

// JobStatus is the life-cycle state of a job.
type JobStatus string

// Job states. Succeeded, failed and canceled are terminal.
const (
	StatusQueued    JobStatus = "queued"
	StatusRunning   JobStatus = "running"
	StatusSucceeded JobStatus = "succeeded"
	StatusFailed    JobStatus = "failed"
	StatusCanceled  JobStatus = "canceled"
)

// Terminal reports whether s is a final state.
func (s JobStatus) Terminal() bool {
	return s == StatusSucceeded || s == StatusFailed || s == StatusCanceled
}

// Job is one accepted inference request and its progress.
type Job struct {
	ID           int64
	Org          string
	Project      string
	Name         string
	Model        string
	Webhook      string
	Secret       string // the receiver's bearer secret; never logged, never returned by the API
	OutputFormat string
	Status       JobStatus
	Error        string
	Prompts      []JobPrompt
	CreatedAt    time.Time
	StartedAt    time.Time // zero until running
	FinishedAt   time.Time // zero until terminal
	NumImages    int       // images requested over all prompts
	Usage        Usage     // metered so far
	// MediaDeletedAt is when retention deleted the job's images; zero before.
	MediaDeletedAt time.Time

	// WebhookEvents are the events sent to Webhook; nil means DefaultWebhookEvents.
	WebhookEvents []string
}

// JobPrompt is one prompt of a job with the parameters resolved at submission (Seed
// is always set) and its progress.
type JobPrompt struct {
	PromptRequest
	Index      int
	ImagesDone int
	StepsDone  int      // denoising steps finished of the image batch now running
	StepsTotal int      // steps of that batch (0 before it starts)
	Images     []string // media keys of the finished images, in order
	// Recipe is what the engine resolved the prompt to, once it has run; nil
	// before.
	Recipe *Recipe
}

// NewJobID returns a random job ID in [2^40, 2^53): a JSON integer that JavaScript
// reads exactly and that no client can guess from another.
func NewJobID() int64 {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	const lo = int64(1) << 40
	return lo + int64(binary.LittleEndian.Uint64(b[:])%uint64(MaxSeed+1-lo))
}

// NewSeed returns a random seed in [0, 2^53).
func NewSeed() int64 {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return int64(binary.LittleEndian.Uint64(b[:]) & MaxSeed)
}

// Manifest is the body of the webhook and the result part of a job's status: image
// URLs keyed by prompt name.
type Manifest struct {
	Name   string              `json:"name"`
	Images map[string][]string `json:"images"`
	JobID  int64               `json:"job_id"`
	Status JobStatus           `json:"status"`
	Error  string              `json:"error,omitempty"`
	// ExpiresAt is when retention deletes the images; their URLs answer 410 after.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`

	// Recipes says, per prompt listed in Images that has run, what made its
	// images (model and its source, rng, seeds, scheduler and spacing, steps,
	// guidance, size): enough to make them again.
	Recipes map[string]*Recipe `json:"recipes,omitempty"`

	// Event and Prompt are set in webhook messages only: the event, and for
	// prompt.completed the prompt whose images Images lists.
	Event  string `json:"event,omitempty"`
	Prompt string `json:"prompt,omitempty"`
}

// MediaKey is the storage key of image index (0-based) of prompt promptName of job:
// "{org}/{project}/{job_id}/{prompt}/{index}.{ext}". Prompt names are validated to be
// safe path parts.
func MediaKey(org, project string, jobID int64, promptName string, index int, ext string) string {
	return org + "/" + project + "/" + itoa(jobID) + "/" + promptName + "/" + itoa(int64(index)) + "." + ext
}

func itoa(v int64) string {
	if v == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	neg := v < 0
	if neg {
		v = -v
	}
	for v > 0 {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}

// InferenceArgs is the queue job that runs a Job. Kind is River's job kind.
type InferenceArgs struct {
	JobID int64 `json:"job_id"`
}

// Kind implements river.JobArgs.
func (InferenceArgs) Kind() string { return "diffute.inference" }

// DeliveryArgs is the queue job that delivers one webhook message.
type DeliveryArgs struct {
	DeliveryID int64 `json:"delivery_id"`
	// AttemptBase is the number of attempts made before this queue job (a
	// redelivery), so attempt numbers in the log keep counting up.
	AttemptBase int `json:"attempt_base,omitempty"`
}

// Kind implements river.JobArgs.
func (DeliveryArgs) Kind() string { return "diffute.delivery" }
