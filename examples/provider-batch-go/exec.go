// Exec for the batch provider: the work of its containers is simulated, but `kubectl exec` runs
// the command for real on the provider's host, in the pod's scratch folder and with the
// container's resolved environment, so scripts that inspect a job can run.
package main

import (
	"os/exec"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/vk-project/vk/sdk/go/gen/vk/provider/v1"
	"github.com/vk-project/vk/sdk/go/vkprovider"
)

func (p *provider) Exec(s grpc.BidiStreamingServer[pb.ExecRequest, pb.ExecResponse]) error {
	start, err := vkprovider.RecvExecStart(s)
	if err != nil {
		return err
	}
	p.mu.Lock()
	c, err := p.lookup(start.GetUid(), start.GetContainer())
	if err == nil && c.st.State.GetRunning() == nil {
		err = status.Errorf(codes.FailedPrecondition, "container %s is not running", c.name)
	}
	if err != nil {
		p.mu.Unlock()
		return err
	}
	cmd := exec.Command(start.GetCommand()[0], start.GetCommand()[1:]...)
	cmd.Dir, cmd.Env = p.pods[start.GetUid()].dir, c.env
	p.mu.Unlock()
	return vkprovider.ExecProcess(s, start, cmd)
}
