package diffute

import (
	"context"
	"strings"
	"time"
)

// Webhook events a request may ask for in webhook_events.
const (
	// EventCompleted is the terminal message: sent once when the job succeeds,
	// fails or is cancelled; its status and error say which.
	EventCompleted = "completed"
	// EventStarted is sent when a worker first starts the job.
	EventStarted = "started"
	// EventPromptCompleted is sent when all images of one prompt are stored; its
	// manifest lists that prompt only.
	EventPromptCompleted = "prompt.completed"
)

// DefaultWebhookEvents is what a request without webhook_events gets.
var DefaultWebhookEvents = []string{EventCompleted}

// ValidWebhookEvent reports whether e names an event.
func ValidWebhookEvent(e string) bool {
	return e == EventCompleted || e == EventStarted || e == EventPromptCompleted
}

// WantsEvent reports whether the job has a webhook and asked for event e.
func (j *Job) WantsEvent(e string) bool {
	if j.Webhook == "" {
		return false
	}
	events := j.WebhookEvents
	if len(events) == 0 {
		events = DefaultWebhookEvents
	}
	for _, x := range events {
		if x == e {
			return true
		}
	}
	return false
}

// JoinEvents and SplitEvents store a job's events as one comma-separated column.
func JoinEvents(events []string) string {
	if len(events) == 0 {
		return strings.Join(DefaultWebhookEvents, ",")
	}
	return strings.Join(events, ",")
}

// SplitEvents is the inverse of JoinEvents.
func SplitEvents(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// DeliveryState is where a webhook message stands. It is the one list of states
// that the store's rows (deliveries.status), the delivery worker, the API's
// status view and the console share.
type DeliveryState string

const (
	// DeliveryNone is the status view's state of a job that named no webhook;
	// no message is ever in it.
	DeliveryNone DeliveryState = "none"
	// DeliveryPending: not attempted yet, or a retry will follow.
	DeliveryPending DeliveryState = "pending"
	// DeliveryDelivered: an attempt got a 2xx answer.
	DeliveryDelivered DeliveryState = "delivered"
	// DeliveryFailed: attempts ran out (or the receiver refused for good); a
	// redelivery makes it pending again.
	DeliveryFailed DeliveryState = "failed"
)

// WebhookSecret is a project's webhook signing secret ("whsec_…"). ExpiresAt is
// zero for the current secret, and set on the previous one after a rotation: it
// keeps signing until then.
type WebhookSecret struct {
	Secret    string     `json:"secret"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// WebhookMessage is one webhook message of a job (an event) and its delivery
// state; its attempts are DeliveryAttempts with the same DeliveryID.
type WebhookMessage struct {
	DeliveryID int64         `json:"delivery_id"`
	MessageID  string        `json:"webhook_id"`
	Event      string        `json:"event"`
	Subject    string        `json:"prompt,omitempty"` // the prompt of a prompt.completed message
	State      DeliveryState `json:"state"`
	Attempts   int           `json:"attempts"`
	CreatedAt  time.Time     `json:"created_at"`
	UpdatedAt  time.Time     `json:"updated_at"`
	// NextAttemptAt is when a pending message is next sent (after a failed
	// attempt, its retry); nil when it is not pending or an attempt is in flight.
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
}

// WebhookStore keeps projects' signing secrets and jobs' webhook messages.
type WebhookStore interface {
	// WebhookSecrets returns the project's signing secrets, current first,
	// creating the first one when the project has none.
	WebhookSecrets(ctx context.Context, org, project string) ([]WebhookSecret, error)
	// RotateWebhookSecret makes a new current secret; the old one keeps signing
	// for overlap. It returns the secrets as WebhookSecrets does.
	RotateWebhookSecret(ctx context.Context, org, project string, overlap time.Duration) ([]WebhookSecret, error)
	// WebhookMessages lists the messages of job jobID of org/project, pending
	// ones included; none for a job of another tenant.
	WebhookMessages(ctx context.Context, org, project string, jobID int64) ([]WebhookMessage, error)
	// Redeliver sends the terminal message of a job of org/project again, with
	// the same webhook-id. ECONFLICT when the job has no terminal message yet or
	// it is still pending.
	Redeliver(ctx context.Context, org, project string, jobID int64) (*WebhookMessage, error)
}
