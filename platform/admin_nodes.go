package platform

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// NodeList is the answer of GET /v1/nodes.
type NodeList struct {
	Nodes []NodeInfo `json:"nodes"`
}

// NodeInfo is one node found through micro discovery.
type NodeInfo struct {
	ID        string            `json:"id"`
	Env       string            `json:"env"`
	Functions []NodeFunctionRef `json:"functions"`
}

// NodeFunctionRef is one function as a node serves it: one micro service
// instance.
type NodeFunctionRef struct {
	Name              string               `json:"name"`
	ServiceVersion    string               `json:"service_version"`
	DeploymentVersion uint64               `json:"deployment_version"`
	SHA256            string               `json:"sha256"`
	InstanceID        string               `json:"instance_id"`
	Endpoints         []micro.EndpointInfo `json:"endpoints"`
}

// nodes handles GET /v1/nodes: it asks every micro service for its INFO
// ($SRV.INFO), keeps the Nylon function services of this env and groups
// them by the node id in their metadata.
func (a *Admin) nodes(w http.ResponseWriter, r *http.Request) {
	if a.cfg.NATS == nil {
		writeProblem(w, r, problem(ProblemUnavailable, http.StatusServiceUnavailable, "no NATS connection to discover nodes with"))
		return
	}
	infos, err := discover(r.Context(), a.cfg.NATS, a.cfg.DiscoveryTimeout)
	if err != nil {
		writeProblem(w, r, problem(ProblemUnavailable, http.StatusServiceUnavailable, err.Error()))
		return
	}
	writeJSON(w, http.StatusOK, groupNodes(infos, a.cfg.Env))
}

// discover sends one $SRV.INFO request and collects the answers until
// timeout, or until no answer came for a short while after the last one.
func discover(ctx context.Context, nc *nats.Conn, timeout time.Duration) ([]micro.Info, error) {
	subject, err := micro.ControlSubject(micro.InfoVerb, "", "")
	if err != nil {
		return nil, err
	}
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, fmt.Errorf("discover: subscribe: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.PublishRequest(subject, inbox, nil); err != nil {
		return nil, fmt.Errorf("discover: request %s: %w", subject, err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// Answers come in a burst; once it is over, stop waiting.
	const quiet = 150 * time.Millisecond
	var infos []micro.Info
	for {
		wait := ctx
		var stop context.CancelFunc = func() {}
		if len(infos) > 0 {
			wait, stop = context.WithTimeout(ctx, quiet)
		}
		msg, err := sub.NextMsgWithContext(wait)
		stop()
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
				return infos, nil
			}
			if errors.Is(err, nats.ErrNoResponders) {
				// Nothing subscribes to $SRV.INFO: no service at all, so
				// no node (not an error: `nylon nodes` says so).
				return infos, nil
			}
			return infos, fmt.Errorf("discover: %w", err)
		}
		var info micro.Info
		if err := json.Unmarshal(msg.Data, &info); err != nil || info.Type != micro.InfoResponseType {
			continue // not a micro INFO answer
		}
		infos = append(infos, info)
	}
}

// groupNodes keeps the function services of env and groups them by node.
func groupNodes(infos []micro.Info, env string) NodeList {
	byID := map[string]*NodeInfo{}
	for _, info := range infos {
		md := info.Metadata
		if md[MetaPlatform] != "nylon" || md[MetaEnv] != env || md[MetaNodeID] == "" {
			continue
		}
		id := md[MetaNodeID]
		n := byID[id]
		if n == nil {
			n = &NodeInfo{ID: id, Env: env, Functions: []NodeFunctionRef{}}
			byID[id] = n
		}
		dv, _ := strconv.ParseUint(md[MetaDeploymentVersion], 10, 64)
		n.Functions = append(n.Functions, NodeFunctionRef{
			Name:              info.Name,
			ServiceVersion:    info.Version,
			DeploymentVersion: dv,
			SHA256:            md[MetaSHA256],
			InstanceID:        info.ID,
			Endpoints:         info.Endpoints,
		})
	}
	out := NodeList{Nodes: make([]NodeInfo, 0, len(byID))}
	for _, n := range byID {
		slices.SortFunc(n.Functions, func(a, b NodeFunctionRef) int { return strings.Compare(a.Name, b.Name) })
		out.Nodes = append(out.Nodes, *n)
	}
	slices.SortFunc(out.Nodes, func(a, b NodeInfo) int { return strings.Compare(a.ID, b.ID) })
	return out
}
