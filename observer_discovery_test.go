package introspection

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// MetadataFetch records "MetadataFetch <failure, or ok> <status>", and
// "refresh" after them for a refresh.
func (o *recordingObserver) MetadataFetch(ctx context.Context, e MetadataEvent) {
	detail := cmpOr(string(e.Failure), "ok") + " " + strconv.Itoa(e.StatusCode)
	if e.Refresh {
		detail += " refresh"
	}
	o.record(ctx, "MetadataFetch", detail)
}

// metadataObserver keeps the MetadataEvents it is told, and whether the
// context of each held what VerifyStart added.
type metadataObserver struct {
	NopObserver

	mu       sync.Mutex // guards events and verified
	events   []MetadataEvent
	verified []bool
}

func (o *metadataObserver) VerifyStart(ctx context.Context) context.Context {
	return context.WithValue(ctx, verificationKey{}, true)
}

func (o *metadataObserver) MetadataFetch(ctx context.Context, e MetadataEvent) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.events = append(o.events, e)
	o.verified = append(o.verified, ctx.Value(verificationKey{}) != nil)
}

// seen returns the events so far.
func (o *metadataObserver) seen() ([]MetadataEvent, []bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]MetadataEvent(nil), o.events...), append([]bool(nil), o.verified...)
}

// TestObserverSeesEachMetadataFetch shows that each fetch of the issuer's
// metadata is told once, with what it ended with: no failure and status
// 200 for usable metadata, else the kind of failure MetadataEvent
// describes and the status the error holds. The event comes with the
// context of the verification that needed the endpoint, as VerifyStart
// returned it.
func TestObserverSeesEachMetadataFetch(t *testing.T) {
	tests := []struct {
		name      string
		answer    func(ds *discoServer, path string) (status int, contentType, body string) // nil: good metadata
		transport func(r *http.Request) (*http.Response, error)                             // nil: the server's
		edit      func(*Settings)
		failure   FailureKind
		status    int
	}{
		{name: "usable metadata", status: 200},
		{name: "server error", answer: func(*discoServer, string) (int, string, string) {
			return http.StatusInternalServerError, "text/plain", "down"
		}, failure: FailureStatus, status: 500},
		{name: "no metadata at any URL", answer: func(*discoServer, string) (int, string, string) {
			return http.StatusNotFound, "text/plain", "not found"
		}, failure: FailureStatus, status: 404},
		{name: "redirect", answer: func(ds *discoServer, _ string) (int, string, string) {
			return http.StatusFound, "", ds.URL + "/elsewhere"
		}, failure: FailureRedirect, status: 302},
		{name: "another issuer", answer: func(ds *discoServer, _ string) (int, string, string) {
			return 200, "application/json", ds.goodMetadata("https://other.example.com", "")
		}, failure: FailureDiscovery, status: 200},
		{name: "not JSON", answer: func(ds *discoServer, _ string) (int, string, string) {
			return 200, "text/html", ds.goodMetadata(ds.URL, "")
		}, failure: FailureDiscovery, status: 200},
		{name: "no client authentication method in common", answer: func(ds *discoServer, _ string) (int, string, string) {
			return 200, "application/json", ds.goodMetadata(ds.URL, `,"introspection_endpoint_auth_methods_supported":["tls_client_auth"]`)
		}, failure: FailureDiscovery, status: 0},
		{name: "no answer", transport: func(*http.Request) (*http.Response, error) {
			return nil, errors.New("connection refused")
		}, failure: FailureTransport, status: 0},
		{name: "no answer in time", transport: func(r *http.Request) (*http.Response, error) {
			<-r.Context().Done()
			return nil, r.Context().Err()
		}, edit: func(s *Settings) { s.Timeout = 50 * time.Millisecond }, failure: FailureTimeout, status: 0},
		{name: "transport panics", transport: func(*http.Request) (*http.Response, error) {
			panic("transport failed")
		}, failure: FailurePanic, status: 0},
	}
	type marker struct{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ds := newDiscoServer(t)
			if tc.answer != nil {
				ds.setMetadata(func(path string) (int, string, string) { return tc.answer(ds, path) })
			}
			obs := &metadataObserver{}
			v := newDiscoveryVerifier(t, ds.URL, nil, func(s *Settings) {
				s.Observer = obs
				if tc.transport != nil {
					s.HTTPClient = &http.Client{Transport: roundTripFunc(tc.transport)}
				}
				if tc.edit != nil {
					tc.edit(s)
				}
			})
			ctx := context.WithValue(context.Background(), marker{}, true)
			_, err := v.Verify(ctx, "tok")
			switch tc.failure {
			case "":
				require.NoError(t, err)
			case FailurePanic:
				assert.Equal(t, FailurePanic, kindOf(err), "%v", err)
			default:
				discoveryFailure(t, err)
			}
			waitForFetch(t, v)
			events, verified := obs.seen()
			require.Len(t, events, 1, "one event per fetch")
			e := events[0]
			assert.Equal(t, tc.failure, e.Failure)
			assert.Equal(t, tc.status, e.StatusCode)
			assert.False(t, e.Refresh, "the first fetch")
			assert.Positive(t, e.Duration)
			assert.Equal(t, []bool{true}, verified, "with the context VerifyStart returned")
		})
	}
}

// TestObserverSeesMetadataRefreshes shows the fetches of a verifier that
// holds metadata: the refresh in the background when it is older than
// Settings.DiscoveryRefresh, failing here, after which the verifier goes
// on with the metadata it held, and a Discover that replaces it.
func TestObserverSeesMetadataRefreshes(t *testing.T) {
	clock := newFakeClock()
	ds := newDiscoServer(t)
	obs := &recordingObserver{}
	v := newDiscoveryVerifier(t, ds.URL, clock, func(s *Settings) {
		s.DiscoveryRefresh = time.Hour
		s.Observer = obs
	})
	ctx := context.Background()
	_, err := v.Verify(ctx, "tok")
	require.NoError(t, err)
	require.Equal(t, []string{"VerifyStart", "MetadataFetch ok 200", "UpstreamStart POST " + ds.URL + "/{introspection}",
		"UpstreamEnd 200", "VerifyEnd accepted none"}, obs.seen())

	ds.setMetadata(func(string) (int, string, string) { return http.StatusServiceUnavailable, "text/plain", "down" })
	clock.Advance(time.Hour)
	_, err = v.Verify(ctx, "tok")
	require.NoError(t, err, "the metadata in use answers while the refresh runs")
	waitForFetch(t, v)
	_, err = v.Verify(ctx, "tok")
	require.NoError(t, err, "the failed refresh kept the metadata")
	events := obs.seen()
	assert.Equal(t, 1, count(events, "MetadataFetch"))
	assert.Contains(t, events, "MetadataFetch status 503 refresh")

	ds.setMetadata(func(path string) (int, string, string) {
		return http.StatusOK, "application/json", ds.goodMetadata(ds.URL, "")
	})
	require.NoError(t, v.Discover(ctx))
	assert.Equal(t, []string{"MetadataFetch ok 200 refresh"}, obs.seen())
	assert.Empty(t, obs.lostContexts())
}

// TestObserverNotToldOfFetchesWithoutAResult shows the fetches that are
// not told: one that Close stopped, and one whose result came after its
// callers had stopped waiting, which is dropped; the fetch that replaced
// it is told.
func TestObserverNotToldOfFetchesWithoutAResult(t *testing.T) {
	t.Run("stopped by Close", func(t *testing.T) {
		arrived := make(chan struct{}, 1)
		ds := newDiscoServer(t)
		transport := ds.Client().Transport
		obs := &recordingObserver{}
		v := newDiscoveryVerifier(t, ds.URL, nil, func(s *Settings) {
			s.Observer = obs
			s.HTTPClient = &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
				arrived <- struct{}{}
				<-r.Context().Done()
				return transport.RoundTrip(r)
			})}
		})
		f, _, _ := v.startFetch(context.Background(), time.Now(), true)
		<-arrived
		require.NoError(t, v.Close())
		<-f.ended
		require.NotNil(t, f.err, "Close stopped the fetch")
		assert.Empty(t, obs.seen())
	})
	t.Run("result after the deadline", func(t *testing.T) {
		ds := newDiscoServer(t)
		release := make(chan struct{})
		var calls sync.Map
		transport := ds.Client().Transport
		obs := &recordingObserver{}
		v := newDiscoveryVerifier(t, ds.URL, nil, func(s *Settings) {
			s.Observer = obs
			s.Timeout = 50 * time.Millisecond
			s.HTTPClient = &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
				if _, hung := calls.LoadOrStore("first", true); !hung {
					<-release // ignores r.Context()
					return nil, errors.New("late")
				}
				return transport.RoundTrip(r)
			})}
		})
		_, err := v.Verify(context.Background(), "tok")
		assert.ErrorIs(t, discoveryFailure(t, err), errHung)
		_, err = v.Verify(context.Background(), "tok")
		require.NoError(t, err, "a new fetch replaced the hung one")
		close(release)
		waitForNoFetch(t)
		assert.Equal(t, 1, count(obs.seen(), "MetadataFetch ok 200"), "only the fetch that replaced it")
	})
}

// discoveryObserverScenario runs verifications and Discover calls that
// fetch the metadata with success and failure, with obs as the observer
// (nil for none), and returns each result, what Stats counted and the
// log.
func discoveryObserverScenario(t *testing.T, obs Observer) (results []string, st Stats, logs *recordingHandler) {
	t.Helper()
	ds := newDiscoServer(t)
	logs = &recordingHandler{}
	v := newDiscoveryVerifier(t, ds.URL, nil, func(s *Settings) {
		s.Observer = obs
		s.Logger = slog.New(logs)
	})
	v.disc.rand = func(n int64) int64 { return n / 2 }
	ctx := context.Background()
	result := func(err error) {
		results = append(results, cmpOr(string(kindOf(err)), "ok"))
	}
	_, err := v.Verify(ctx, "tok") // the first fetch
	result(err)
	ds.setMetadata(func(string) (int, string, string) { return http.StatusBadGateway, "text/plain", "down" })
	result(v.Discover(ctx)) // a failed refresh
	_, err = v.Verify(ctx, "tok")
	result(err)
	results = append(results, "in use: "+strings.TrimPrefix(v.IntrospectionURL(), ds.URL))
	return results, v.Stats(), logs
}

// TestObserverPanicInMetadataFetchChangesNothing shows that a panic in
// MetadataFetch is recovered, counted in Stats.Panics and logged, and
// changes neither a result of discovery nor the metadata in use.
func TestObserverPanicInMetadataFetchChangesNothing(t *testing.T) {
	want, wantStats, _ := discoveryObserverScenario(t, nil)
	require.Equal(t, []string{"ok", "discovery", "ok"}, want[:3])
	rec := &recordingObserver{}
	got, st, _ := discoveryObserverScenario(t, rec)
	require.Equal(t, want, got, "an observer changes nothing")
	require.Equal(t, wantStats, st)
	require.Equal(t, 2, count(rec.seen(), "MetadataFetch"), "the scenario fetches twice")

	got, st, logs := discoveryObserverScenario(t, &recordingObserver{panicIn: "MetadataFetch"})
	assert.Equal(t, want, got)
	assert.Equal(t, uint64(2), st.Panics, "each panic is counted")
	st.Panics = 0
	assert.Equal(t, wantStats, st)
	n := 0
	for _, r := range logs.matching("recovered from a panic") {
		if in, _ := attr(r, "in"); in == "Observer.MetadataFetch" {
			n++
		}
	}
	assert.Equal(t, 2, n, "each panic is logged, naming the method")
}
