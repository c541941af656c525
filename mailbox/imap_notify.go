// The in-process notifier that tells open IMAP sessions a hosted user's folders changed, so an idling
// client hears of a new delivery at once instead of at its next poll.

package mailbox

import (
	"strings"
	"sync"
)

// Notifier passes "something changed for this user" from whoever changed it (delivery, another
// session) to the sessions watching that user. A notification carries no data: a watcher looks at the
// store again. It is safe for concurrent use; the zero value is not usable, use NewNotifier.
type Notifier struct {
	mu       sync.Mutex
	watchers map[string]map[chan struct{}]struct{}
}

// NewNotifier returns an empty Notifier.
func NewNotifier() *Notifier {
	return &Notifier{watchers: map[string]map[chan struct{}]struct{}{}}
}

// Notify wakes every watcher of user. It never blocks: a watcher already woken stays woken once.
// Call it after the transaction that changed the user's folders has committed. A nil Notifier
// ignores the call.
func (n *Notifier) Notify(user string) {
	if n == nil {
		return
	}
	user = strings.ToLower(user)
	n.mu.Lock()
	defer n.mu.Unlock()
	for ch := range n.watchers[user] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Watch returns a channel that receives after each Notify for user (several notifications may merge
// into one) and a function that stops watching; call it exactly once.
func (n *Notifier) Watch(user string) (<-chan struct{}, func()) {
	user = strings.ToLower(user)
	ch := make(chan struct{}, 1)
	n.mu.Lock()
	if n.watchers[user] == nil {
		n.watchers[user] = map[chan struct{}]struct{}{}
	}
	n.watchers[user][ch] = struct{}{}
	n.mu.Unlock()
	return ch, func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		delete(n.watchers[user], ch)
		if len(n.watchers[user]) == 0 {
			delete(n.watchers, user)
		}
	}
}

// Watchers returns the number of watchers of user, for tests and metrics.
func (n *Notifier) Watchers(user string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.watchers[strings.ToLower(user)])
}
