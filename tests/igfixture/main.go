// igfixture: a grpc-go server that behaves like Inspektor Gadget's RunGadget service
// (pkg/gadget-service/service-oci.go), for conformance tests and as the benchmark's feeder.
//
// It is built from Debian's golang-go and golang-google-grpc-dev only (GOPATH mode), so it
// uses a raw bytes codec and encodes/decodes the few protobuf messages it needs by hand
// (field numbers of IG's api.proto). What it models from IG:
//
//   - GetInfo answers serverVersion; GetGadgetInfo answers the gadget's GadgetInfo;
//   - RunGadget: the first request must be a runRequest with version 1 (else an error status);
//     the GadgetInfo event is sent first; payloads go through a buffered channel of
//     -buffer events that drops when full while seq keeps advancing (IG's
//     --events-buffer-length); one Send per event; log events (type >= 1<<16) travel the same
//     channel; a stopRequest ends the run after the flush-on-stop payloads; a half-close
//     cancels the run (no flush); errors are gRPC status codes.
//
// Events come from files written by tests/igfixture/__init__.py: <dir>/<gadget>.events, a
// GadgetInfo record followed by payload records (little-endian u32 type, u32 dataSourceID,
// u32 flags (1 = flush-on-stop), u32 length, then the payload bytes).
//
// Faults for conformance tests: -fail-after N (status after N payloads), -goaway-after N
// (GracefulStop: GOAWAY, the run still completes), -kill-after N (connections closed abruptly).
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"io/ioutil"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

type record struct {
	typ     uint32
	ds      uint32
	flush   bool
	payload []byte
}

type gadget struct {
	info     []byte
	payloads []record
}

var (
	listen      = flag.String("listen", "", "unix:/path or tcp:host:port")
	eventsDir   = flag.String("events-dir", "", "directory of <gadget>.events files")
	rate        = flag.Float64("rate", 0, "payload events per second per run (0 = as fast as possible)")
	rates       = flag.String("rates", "", "per-gadget rates overriding -rate: trace_exec=900,trace_open=3000")
	loops       = flag.Int("loops", 1, "times the payloads are sent per run")
	buffer      = flag.Int("buffer", 16384, "events buffered per run before dropping (IG's --events-buffer-length)")
	hold        = flag.Bool("hold", false, "after the payloads, keep the run open until stopped")
	version     = flag.String("server-version", "0.55.1", "serverVersion answered by GetInfo")
	tlsCert     = flag.String("tls-cert", "", "server certificate (PEM)")
	tlsKey      = flag.String("tls-key", "", "server key (PEM)")
	tlsClientCA = flag.String("tls-client-ca", "", "CA of the client certificates (mTLS)")
	failAfter   = flag.Int("fail-after", -1, "end the run with -fail-code after N payloads")
	failCode    = flag.Int("fail-code", int(codes.Unknown), "status code for -fail-after")
	failMessage = flag.String("fail-message", "ebpf program detached", "status message for -fail-after")
	goawayAfter = flag.Int("goaway-after", -1, "GracefulStop (GOAWAY) after N payloads")
	killAfter   = flag.Int("kill-after", -1, "close every connection abruptly after N payloads")
)

// rawCodec hands messages through as bytes: the protobuf is written and read by hand.
type rawCodec struct{}

func (rawCodec) Marshal(v interface{}) ([]byte, error) {
	switch m := v.(type) {
	case []byte:
		return m, nil
	case *[]byte:
		return *m, nil
	}
	return nil, fmt.Errorf("rawCodec: cannot marshal %T", v)
}

func (rawCodec) Unmarshal(data []byte, v interface{}) error {
	p, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("rawCodec: cannot unmarshal into %T", v)
	}
	*p = append([]byte(nil), data...)
	return nil
}

func (rawCodec) String() string { return "proto" }

func appendVarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

func appendBytes(b []byte, field int, data []byte) []byte {
	b = appendVarint(b, uint64(field<<3|2))
	b = appendVarint(b, uint64(len(data)))
	return append(b, data...)
}

func encodeEvent(typ, seq uint32, payload []byte, ds uint32) []byte {
	b := make([]byte, 0, len(payload)+24)
	if typ != 0 {
		b = appendVarint(append(b, 0x08), uint64(typ))
	}
	if seq != 0 {
		b = appendVarint(append(b, 0x10), uint64(seq))
	}
	if len(payload) > 0 {
		b = appendBytes(b, 3, payload)
	}
	if ds != 0 {
		b = appendVarint(append(b, 0x20), uint64(ds))
	}
	return b
}

type field struct {
	num  int
	wt   int
	val  uint64
	data []byte
}

// fields parses one protobuf message level (enough for the control requests).
func fields(b []byte) ([]field, error) {
	var out []field
	for len(b) > 0 {
		key, n := binary.Uvarint(b)
		if n <= 0 {
			return nil, fmt.Errorf("bad key")
		}
		b = b[n:]
		f := field{num: int(key >> 3), wt: int(key & 7)}
		switch f.wt {
		case 0:
			v, n := binary.Uvarint(b)
			if n <= 0 {
				return nil, fmt.Errorf("bad varint")
			}
			f.val, b = v, b[n:]
		case 2:
			l, n := binary.Uvarint(b)
			if n <= 0 || uint64(len(b)-n) < l {
				return nil, fmt.Errorf("bad length")
			}
			f.data, b = b[n:n+int(l)], b[n+int(l):]
		case 1:
			if len(b) < 8 {
				return nil, fmt.Errorf("short fixed64")
			}
			b = b[8:]
		case 5:
			if len(b) < 4 {
				return nil, fmt.Errorf("short fixed32")
			}
			b = b[4:]
		default:
			return nil, fmt.Errorf("wire type %d", f.wt)
		}
		out = append(out, f)
	}
	return out, nil
}

func loadGadget(name string) (*gadget, error) {
	if strings.ContainsAny(name, "/.") || name == "" {
		return nil, os.ErrNotExist
	}
	f, err := os.Open(filepath.Join(*eventsDir, name+".events"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := bufio.NewReader(f)
	g := &gadget{}
	hdr := make([]byte, 16)
	for {
		if _, err := io.ReadFull(r, hdr); err == io.EOF {
			break
		} else if err != nil {
			return nil, err
		}
		rec := record{
			typ:   binary.LittleEndian.Uint32(hdr[0:]),
			ds:    binary.LittleEndian.Uint32(hdr[4:]),
			flush: binary.LittleEndian.Uint32(hdr[8:])&1 != 0,
		}
		rec.payload = make([]byte, binary.LittleEndian.Uint32(hdr[12:]))
		if _, err := io.ReadFull(r, rec.payload); err != nil {
			return nil, err
		}
		if rec.typ == 4 {
			g.info = rec.payload
		} else {
			g.payloads = append(g.payloads, rec)
		}
	}
	if g.info == nil {
		return nil, fmt.Errorf("%s: no GadgetInfo record", name)
	}
	return g, nil
}

// gadgetName: "ghcr.io/x/trace_exec:v0.55.1" -> "trace_exec".
func gadgetName(image string) string {
	last := image[strings.LastIndex(image, "/")+1:]
	if i := strings.IndexAny(last, ":@"); i >= 0 {
		last = last[:i]
	}
	return last
}

type server struct {
	grpc     *grpc.Server
	payloads int64 // sent, across runs
	mu       sync.Mutex
	conns    []net.Conn
	goaway   sync.Once
	kill     sync.Once
}

func (s *server) getInfo(srv interface{}, ctx context.Context, dec func(interface{}) error, _ grpc.UnaryServerInterceptor) (interface{}, error) {
	var req []byte
	if err := dec(&req); err != nil {
		return nil, err
	}
	b := appendBytes(nil, 1, []byte("1.0"))
	b = appendBytes(b, 4, []byte(*version))
	return b, nil
}

func (s *server) getGadgetInfo(srv interface{}, ctx context.Context, dec func(interface{}) error, _ grpc.UnaryServerInterceptor) (interface{}, error) {
	var req []byte
	if err := dec(&req); err != nil {
		return nil, err
	}
	fs, err := fields(req)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "grpc: error unmarshalling request: %v", err)
	}
	image := ""
	for _, f := range fs {
		if f.num == 2 && f.wt == 2 {
			image = string(f.data)
		}
	}
	g, err := loadGadget(gadgetName(image))
	if err != nil {
		return nil, status.Errorf(codes.Unknown, "fetching gadget information: %s: not found", image)
	}
	return appendBytes(nil, 1, g.info), nil
}

func (s *server) runGadget(srv interface{}, stream grpc.ServerStream) error {
	var first []byte
	if err := stream.RecvMsg(&first); err != nil {
		return err
	}
	fs, err := fields(first)
	if err != nil || len(fs) == 0 || fs[0].num != 1 || fs[0].wt != 2 {
		return status.Error(codes.Unknown, "expected first control message to be gadget run request")
	}
	run, err := fields(fs[0].data)
	if err != nil {
		return status.Errorf(codes.Unknown, "bad run request: %v", err)
	}
	image, ver, logLevel := "", uint64(0), uint64(0)
	for _, f := range run {
		switch {
		case f.num == 1 && f.wt == 2:
			image = string(f.data)
		case f.num == 4 && f.wt == 0:
			ver = f.val
		case f.num == 12 && f.wt == 0:
			logLevel = f.val
		}
	}
	if ver != 1 {
		return status.Errorf(codes.Unknown, "expected version to be 1, got %d", ver)
	}
	g, err := loadGadget(gadgetName(image))
	if err != nil {
		return status.Errorf(codes.Unknown, "instantiating gadget: %s: image not found", image)
	}

	runRate := *rate
	for _, kv := range strings.Split(*rates, ",") {
		if i := strings.Index(kv, "="); i > 0 && kv[:i] == gadgetName(image) {
			fmt.Sscanf(kv[i+1:], "%g", &runRate)
		}
	}
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	var stopped int32 // 1 = stop request (flush), 2 = half-close or error (cancel, no flush)
	go func() {
		for {
			var m []byte
			if err := stream.RecvMsg(&m); err != nil {
				atomic.CompareAndSwapInt32(&stopped, 0, 2)
				cancel()
				return
			}
			if mf, err := fields(m); err == nil && len(mf) > 0 && mf[0].num == 2 {
				atomic.CompareAndSwapInt32(&stopped, 0, 1)
				cancel()
			}
		}
	}()

	if err := stream.SendMsg(encodeEvent(4, 0, g.info, 0)); err != nil {
		return err
	}
	events := make(chan []byte, *buffer)
	var dropped int64
	go func() { // the gadget: produces events, never waits for the client
		defer close(events)
		if logLevel >= 4 {
			events <- encodeEvent(4<<16, 0, []byte(fmt.Sprintf("running %d payloads", len(g.payloads)**loops)), 0)
		}
		var seq uint32
		start := time.Now()
		n := 0
		for l := 0; l < *loops; l++ {
			for _, p := range g.payloads {
				if p.flush {
					continue
				}
				if ctx.Err() != nil {
					return
				}
				if runRate > 0 {
					due := start.Add(time.Duration(float64(n) / runRate * float64(time.Second)))
					if d := time.Until(due); d > time.Millisecond {
						select {
						case <-ctx.Done():
							return
						case <-time.After(d):
						}
					}
				}
				n++
				if p.typ >= 1<<16 {
					events <- encodeEvent(p.typ, 0, p.payload, 0)
					continue
				}
				seq++
				select {
				case events <- encodeEvent(0, seq, p.payload, p.ds):
				default:
					dropped++ // IG drops when the run's buffer is full; seq still advances
				}
			}
		}
		if *hold {
			<-ctx.Done()
		}
		if atomic.LoadInt32(&stopped) != 2 {
			for _, p := range g.payloads { // flush-on-stop data (advise_seccomp)
				if p.flush {
					seq++
					events <- encodeEvent(0, seq, p.payload, p.ds)
				}
			}
		}
	}()
	sent := 0
	for ev := range events {
		if atomic.LoadInt32(&stopped) == 2 {
			continue // cancelled: drain, send nothing more
		}
		if err := stream.SendMsg(ev); err != nil {
			cancel()
			for range events {
			}
			return err
		}
		sent++
		total := atomic.AddInt64(&s.payloads, 1)
		if *failAfter >= 0 && sent >= *failAfter {
			cancel()
			go func() {
				for range events {
				}
			}()
			return status.Error(codes.Code(*failCode), *failMessage)
		}
		if *goawayAfter >= 0 && total >= int64(*goawayAfter) {
			s.goaway.Do(func() { go s.grpc.GracefulStop() })
		}
		if *killAfter >= 0 && total >= int64(*killAfter) {
			s.kill.Do(s.closeConns)
		}
	}
	fmt.Fprintf(os.Stderr, "igfixture: run %s sent=%d dropped=%d\n", gadgetName(image), sent, dropped)
	return nil
}

func (s *server) closeConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
}

type trackingListener struct {
	net.Listener
	s *server
}

func (l trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.s.mu.Lock()
		l.s.conns = append(l.s.conns, c)
		l.s.mu.Unlock()
	}
	return c, err
}

func main() {
	flag.Parse()
	network, address := "tcp", strings.TrimPrefix(*listen, "tcp:")
	if strings.HasPrefix(*listen, "unix:") {
		network, address = "unix", strings.TrimPrefix(*listen, "unix:")
		os.Remove(address)
	}
	lis, err := net.Listen(network, address)
	if err != nil {
		fmt.Fprintln(os.Stderr, "igfixture:", err)
		os.Exit(1)
	}
	opts := []grpc.ServerOption{grpc.CustomCodec(rawCodec{})}
	if *tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(*tlsCert, *tlsKey)
		if err != nil {
			fmt.Fprintln(os.Stderr, "igfixture:", err)
			os.Exit(1)
		}
		cfg := &tls.Config{Certificates: []tls.Certificate{cert}}
		if *tlsClientCA != "" {
			pem, err := ioutil.ReadFile(*tlsClientCA)
			if err != nil {
				fmt.Fprintln(os.Stderr, "igfixture:", err)
				os.Exit(1)
			}
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(pem)
			cfg.ClientCAs = pool
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(cfg)))
	}
	s := &server{grpc: grpc.NewServer(opts...)}
	s.grpc.RegisterService(&grpc.ServiceDesc{
		ServiceName: "api.BuiltInGadgetManager",
		HandlerType: (*interface{})(nil),
		Methods:     []grpc.MethodDesc{{MethodName: "GetInfo", Handler: s.getInfo}},
	}, s)
	s.grpc.RegisterService(&grpc.ServiceDesc{
		ServiceName: "api.GadgetManager",
		HandlerType: (*interface{})(nil),
		Methods:     []grpc.MethodDesc{{MethodName: "GetGadgetInfo", Handler: s.getGadgetInfo}},
		Streams: []grpc.StreamDesc{{
			StreamName: "RunGadget", Handler: s.runGadget, ServerStreams: true, ClientStreams: true,
		}},
	}, s)
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)
	fmt.Printf("LISTENING %s\n", lis.Addr().String())
	os.Stdout.Sync()
	go func() {
		if err := s.grpc.Serve(trackingListener{lis, s}); err != nil {
			fmt.Fprintln(os.Stderr, "igfixture:", err)
		}
	}()
	// After a GracefulStop the process stays until terminated, so runs still open finish.
	<-term
	s.grpc.Stop()
}
