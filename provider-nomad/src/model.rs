//! The part of Nomad's HTTP API model (`github.com/hashicorp/nomad/api`) this provider reads and
//! writes, as serde types with Nomad's field names. Every field is optional or defaulted, and
//! Go's `null` for an empty slice or map reads as empty, so a reply from a newer or older Nomad
//! with more or fewer fields still decodes. Durations are integer nanoseconds, as on Nomad's wire.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

/// Reads `null` as the type's default (Go marshals a nil slice or map as `null`).
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn is_empty_map<K, V>(m: &BTreeMap<K, V>) -> bool {
    m.is_empty()
}

/// `api.Job`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Job {
    /// Job ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// Display name.
    pub name: String,
    /// `service` or `batch`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// Region.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Nomad namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Scheduling priority.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    /// Datacenters the job may run in.
    #[serde(deserialize_with = "nullable")]
    pub datacenters: Vec<String>,
    /// Node pool.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_pool: Option<String>,
    /// Placement constraints.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<Constraint>,
    /// Task groups (vk uses exactly one).
    #[serde(deserialize_with = "nullable")]
    pub task_groups: Vec<TaskGroup>,
    /// Metadata: vk's pod identity tags.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "is_empty_map")]
    pub meta: BTreeMap<String, String>,
    /// `pending`, `running` or `dead` (read only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Set once the job was stopped (read only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop: Option<bool>,
    /// Raft index of the last change (read only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modify_index: Option<u64>,
}

/// `api.Constraint`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Constraint {
    /// Left side, e.g. `${node.class}` or `${meta.zone}`.
    #[serde(rename = "LTarget")]
    pub l_target: String,
    /// Right side.
    #[serde(rename = "RTarget")]
    pub r_target: String,
    /// Operator, e.g. `=`.
    #[serde(rename = "Operand")]
    pub operand: String,
}

/// `api.TaskGroup`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TaskGroup {
    /// Group name.
    pub name: String,
    /// Instances (vk: 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<i64>,
    /// Tasks, one per container.
    #[serde(deserialize_with = "nullable")]
    pub tasks: Vec<Task>,
    /// How tasks are restarted in place.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<RestartPolicy>,
    /// Whether a failed allocation is placed again elsewhere (vk: never).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reschedule_policy: Option<ReschedulePolicy>,
    /// Group network (ports of every task).
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<NetworkResource>,
    /// Metadata.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "is_empty_map")]
    pub meta: BTreeMap<String, String>,
}

/// `api.RestartPolicy`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RestartPolicy {
    /// Window in which `attempts` count (ns).
    pub interval: Option<i64>,
    /// Restarts allowed within the interval.
    pub attempts: Option<i64>,
    /// Wait before a restart (ns).
    pub delay: Option<i64>,
    /// `fail` or `delay` once attempts are used up.
    pub mode: Option<String>,
}

/// `api.ReschedulePolicy`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ReschedulePolicy {
    /// Reschedule attempts (vk: 0).
    pub attempts: Option<i64>,
    /// Window of the attempts (ns).
    pub interval: Option<i64>,
    /// Unlimited rescheduling (vk: false).
    pub unlimited: Option<bool>,
}

/// `api.NetworkResource`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkResource {
    /// `host` or `bridge`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mode: String,
    /// The address (read only, in allocations).
    #[serde(rename = "IP", skip_serializing_if = "String::is_empty")]
    pub ip: String,
    /// Static ports.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub reserved_ports: Vec<Port>,
    /// Ports Nomad picks.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub dynamic_ports: Vec<Port>,
}

/// `api.Port`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Port {
    /// Label, referenced by the task's driver config.
    pub label: String,
    /// Host port (reserved ports; chosen by Nomad for dynamic ones).
    #[serde(skip_serializing_if = "is_zero")]
    pub value: i64,
    /// Port inside the task's network namespace.
    #[serde(skip_serializing_if = "is_zero")]
    pub to: i64,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// `api.Task`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Task {
    /// Task name (the container name).
    pub name: String,
    /// Task driver.
    pub driver: String,
    /// Driver configuration.
    #[serde(deserialize_with = "nullable")]
    pub config: BTreeMap<String, serde_json::Value>,
    /// Environment.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "is_empty_map")]
    pub env: BTreeMap<String, String>,
    /// CPU and memory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// Metadata (vk: which container this task is).
    #[serde(deserialize_with = "nullable", skip_serializing_if = "is_empty_map")]
    pub meta: BTreeMap<String, String>,
    /// Time between the kill signal and SIGKILL (ns).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kill_timeout: Option<i64>,
    /// Files written into the task directory before it starts.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub templates: Vec<Template>,
    /// Prestart/poststart/poststop hook.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<Lifecycle>,
    /// Log rotation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_config: Option<LogConfig>,
}

/// `api.Resources`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Resources {
    /// CPU in MHz.
    #[serde(rename = "CPU", skip_serializing_if = "Option::is_none")]
    pub cpu: Option<i64>,
    /// Whole reserved cores (instead of MHz).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cores: Option<i64>,
    /// Memory reserved, MiB.
    #[serde(rename = "MemoryMB", skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<i64>,
    /// Memory the task may burst to, MiB (needs memory oversubscription).
    #[serde(rename = "MemoryMaxMB", skip_serializing_if = "Option::is_none")]
    pub memory_max_mb: Option<i64>,
}

/// `api.Template`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Template {
    /// The content.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedded_tmpl: Option<String>,
    /// Destination, relative to the task directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dest_path: Option<String>,
    /// File mode, octal text such as `"0644"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub perms: Option<String>,
    /// What a change does (vk: `noop`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change_mode: Option<String>,
    /// Template delimiters; vk sets ones the content does not contain, so it is copied verbatim.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub left_delim: Option<String>,
    /// See `left_delim`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub right_delim: Option<String>,
    /// The file's `KEY=VALUE` lines become environment variables.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub envvars: Option<bool>,
}

/// `api.TaskLifecycle`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Lifecycle {
    /// `prestart`, `poststart` or `poststop`.
    pub hook: String,
    /// Keeps running beside the main tasks.
    pub sidecar: bool,
}

/// `api.LogConfig`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct LogConfig {
    /// Rotated files kept.
    pub max_files: Option<i64>,
    /// Size of one file, MB.
    #[serde(rename = "MaxFileSizeMB")]
    pub max_file_size_mb: Option<i64>,
}

/// `api.JobRegisterRequest`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobRegisterRequest<'a> {
    /// The job.
    pub job: &'a Job,
}

/// `api.JobRegisterResponse`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct JobRegisterResponse {
    /// The evaluation the registration created.
    #[serde(rename = "EvalID")]
    pub eval_id: String,
    /// Raft index of the job change.
    pub job_modify_index: u64,
    /// Warnings about the job.
    pub warnings: String,
}

/// `api.JobListStub`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct JobListStub {
    /// Job ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// Namespace.
    pub namespace: String,
    /// Status.
    pub status: String,
    /// Stopped.
    pub stop: bool,
    /// Metadata (newer Nomad releases list it; older ones need `GET /v1/job/:id`).
    #[serde(deserialize_with = "nullable")]
    pub meta: BTreeMap<String, String>,
    /// Raft index of the last change.
    pub modify_index: u64,
}

/// `api.AllocationListStub` and `api.Allocation` (the fields both have, plus the allocation's
/// resources that only the full object carries).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Allocation {
    /// Allocation ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// Job ID.
    #[serde(rename = "JobID")]
    pub job_id: String,
    /// Namespace.
    pub namespace: String,
    /// Node the allocation was placed on.
    #[serde(rename = "NodeID")]
    pub node_id: String,
    /// Node name.
    pub node_name: String,
    /// Task group.
    pub task_group: String,
    /// `run`, `stop` or `evict`.
    pub desired_status: String,
    /// Why the desired status is what it is.
    pub desired_description: String,
    /// `pending`, `running`, `complete`, `failed`, `lost` or `unknown`.
    pub client_status: String,
    /// The client's explanation.
    pub client_description: String,
    /// Per task.
    #[serde(deserialize_with = "nullable")]
    pub task_states: BTreeMap<String, TaskState>,
    /// Network and ports (full allocations only).
    pub allocated_resources: Option<AllocatedResources>,
    /// Raft index of the creation.
    pub create_index: u64,
    /// Raft index of the last change.
    pub modify_index: u64,
    /// Creation time, ns since the epoch.
    pub create_time: i64,
}

impl Allocation {
    /// Whether the allocation will not run (again).
    pub fn is_terminal(&self) -> bool {
        matches!(self.client_status.as_str(), "complete" | "failed" | "lost")
            || (self.desired_status != "run"
                && self.client_status != "running"
                && self.client_status != "pending")
    }

    /// The allocation's address, if the full object was read.
    pub fn ip(&self) -> Option<&str> {
        let shared = self.allocated_resources.as_ref()?.shared.as_ref()?;
        shared
            .networks
            .iter()
            .map(|n| n.ip.as_str())
            .find(|ip| !ip.is_empty())
    }
}

/// `api.AllocatedResources`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AllocatedResources {
    /// Resources shared by the group.
    pub shared: Option<AllocatedSharedResources>,
}

/// `api.AllocatedSharedResources`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AllocatedSharedResources {
    /// Networks with their address.
    #[serde(deserialize_with = "nullable")]
    pub networks: Vec<NetworkResource>,
}

/// `api.TaskState`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TaskState {
    /// `pending`, `running` or `dead`.
    pub state: String,
    /// The task failed (dead for good with an error).
    pub failed: bool,
    /// Restarts so far.
    pub restarts: u64,
    /// When the current run started (RFC 3339; the zero time when never).
    pub started_at: Option<String>,
    /// When the task finished.
    pub finished_at: Option<String>,
    /// Events, oldest first.
    #[serde(deserialize_with = "nullable")]
    pub events: Vec<TaskEvent>,
}

/// `api.TaskEvent`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TaskEvent {
    /// `Received`, `Started`, `Terminated`, `Restarting`, `Driver Failure`, …
    #[serde(rename = "Type")]
    pub kind: String,
    /// When, ns since the epoch.
    pub time: i64,
    /// A message for people.
    pub display_message: String,
    /// Exit code (`Terminated`).
    pub exit_code: i64,
    /// Signal (`Terminated`).
    pub signal: i64,
    /// Driver error text.
    pub driver_error: String,
    /// Setup error text.
    pub setup_error: String,
    /// Why a restart happened.
    pub restart_reason: String,
    /// Whether this event fails the task.
    pub fails_task: bool,
}

/// `api.Evaluation`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Evaluation {
    /// Evaluation ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// Job ID.
    #[serde(rename = "JobID")]
    pub job_id: String,
    /// `pending`, `complete`, `failed`, `blocked`, `canceled`.
    pub status: String,
    /// Explanation of the status.
    pub status_description: String,
    /// Groups that could not be placed, with why.
    #[serde(rename = "FailedTGAllocs", deserialize_with = "nullable")]
    pub failed_tg_allocs: BTreeMap<String, AllocationMetric>,
    /// The evaluation waiting for capacity, if placement failed.
    #[serde(rename = "BlockedEval")]
    pub blocked_eval: String,
    /// Raft index of the creation.
    pub create_index: u64,
    /// Raft index of the last change.
    pub modify_index: u64,
}

/// `api.AllocationMetric`: why the scheduler could not place a group.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AllocationMetric {
    /// Nodes looked at.
    pub nodes_evaluated: u64,
    /// Nodes filtered out by constraints.
    pub nodes_filtered: u64,
    /// Nodes in the job's node pool.
    pub nodes_in_pool: u64,
    /// Nodes out of a resource.
    pub nodes_exhausted: u64,
    /// Count by constraint that filtered nodes out.
    #[serde(deserialize_with = "nullable")]
    pub constraint_filtered: BTreeMap<String, u64>,
    /// Count by resource that ran out (`cpu`, `memory`, …).
    #[serde(deserialize_with = "nullable")]
    pub dimension_exhausted: BTreeMap<String, u64>,
    /// Count by node class that was filtered out.
    #[serde(deserialize_with = "nullable")]
    pub class_filtered: BTreeMap<String, u64>,
    /// Nodes available per datacenter.
    #[serde(deserialize_with = "nullable")]
    pub nodes_available: BTreeMap<String, u64>,
}

/// `api.NodeListStub`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NodeListStub {
    /// Node ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// Node name.
    pub name: String,
    /// Datacenter.
    pub datacenter: String,
    /// Node pool.
    pub node_pool: String,
    /// `ready`, `down`, `initializing`, `disconnected`.
    pub status: String,
    /// `eligible` or `ineligible`.
    pub scheduling_eligibility: String,
    /// Draining.
    pub drain: bool,
    /// Resources (with `?resources=true`).
    pub node_resources: Option<NodeResources>,
    /// Reserved for the OS (with `?resources=true`).
    pub reserved_resources: Option<NodeReservedResources>,
}

/// `api.Node`, as far as vk reads it (the address of a node).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Node {
    /// Node ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// `host:port` of the client's HTTP API.
    #[serde(rename = "HTTPAddr")]
    pub http_addr: String,
    /// Fingerprinted attributes (`unique.network.ip-address`, …).
    #[serde(deserialize_with = "nullable")]
    pub attributes: BTreeMap<String, String>,
}

impl Node {
    /// The node's IP: the fingerprinted address, else the host of its HTTP address.
    pub fn ip(&self) -> Option<&str> {
        self.attributes
            .get("unique.network.ip-address")
            .map(String::as_str)
            .filter(|ip| !ip.is_empty())
            .or_else(|| {
                let host = self
                    .http_addr
                    .rsplit_once(':')
                    .map_or(self.http_addr.as_str(), |(h, _)| h);
                (!host.is_empty()).then_some(host.trim_start_matches('[').trim_end_matches(']'))
            })
    }
}

/// `api.NodeResources`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NodeResources {
    /// CPU.
    pub cpu: NodeCpuResources,
    /// Memory.
    pub memory: NodeMemoryResources,
    /// Disk.
    pub disk: NodeDiskResources,
}

/// `api.NodeReservedResources`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NodeReservedResources {
    /// CPU.
    pub cpu: NodeCpuResources,
    /// Memory.
    pub memory: NodeMemoryResources,
    /// Disk.
    pub disk: NodeDiskResources,
}

/// `api.NodeCpuResources`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NodeCpuResources {
    /// MHz.
    pub cpu_shares: i64,
    /// Cores.
    pub total_cpu_cores: i64,
}

/// `api.NodeMemoryResources`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NodeMemoryResources {
    /// MiB.
    #[serde(rename = "MemoryMB")]
    pub memory_mb: i64,
}

/// `api.NodeDiskResources`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NodeDiskResources {
    /// MiB.
    #[serde(rename = "DiskMB")]
    pub disk_mb: i64,
}

/// One line of `/v1/event/stream`: `api.Events` (a heartbeat is `{}`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Events {
    /// Raft index of the batch.
    pub index: u64,
    /// The events.
    #[serde(deserialize_with = "nullable")]
    pub events: Vec<Event>,
}

/// `api.Event`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Event {
    /// `Allocation`, `Job`, `Evaluation`, `Node`, …
    pub topic: String,
    /// `AllocationUpdated`, `JobRegistered`, `JobDeregistered`, …
    #[serde(rename = "Type")]
    pub kind: String,
    /// The object's ID.
    pub key: String,
    /// Related IDs (an allocation's job ID and evaluation ID).
    #[serde(deserialize_with = "nullable")]
    pub filter_keys: Vec<String>,
    /// Raft index.
    pub index: u64,
    /// The object.
    pub payload: EventPayload,
}

/// `api.Event.Payload`, as far as vk reads it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EventPayload {
    /// Allocation events.
    pub allocation: Option<Allocation>,
    /// Evaluation events.
    pub evaluation: Option<Evaluation>,
    /// Job events.
    pub job: Option<Job>,
}

/// `api.StreamFrame` of `/v1/client/fs/logs` without `plain=true`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct StreamFrame {
    /// Offset of the data in the file.
    pub offset: i64,
    /// The bytes, base64.
    pub data: String,
    /// The file.
    pub file: String,
    /// `file deleted`, `file truncated`.
    pub file_event: String,
}

/// `api.AllocResourceUsage`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AllocResourceUsage {
    /// Per task.
    #[serde(deserialize_with = "nullable")]
    pub tasks: BTreeMap<String, TaskResourceUsage>,
    /// When measured, ns since the epoch.
    pub timestamp: i64,
}

/// `api.TaskResourceUsage`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TaskResourceUsage {
    /// Usage.
    pub resource_usage: ResourceUsage,
    /// When measured, ns since the epoch.
    pub timestamp: i64,
}

/// `api.ResourceUsage`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ResourceUsage {
    /// Memory.
    pub memory_stats: MemoryStats,
    /// CPU.
    pub cpu_stats: CpuStats,
}

/// `api.MemoryStats`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MemoryStats {
    /// Resident set, bytes.
    #[serde(rename = "RSS")]
    pub rss: u64,
    /// Usage (incl. cache), bytes.
    pub usage: u64,
    /// Cache, bytes.
    pub cache: u64,
}

/// `api.CpuStats`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CpuStats {
    /// CPU time in MHz-ticks (Nomad's unit), cumulative.
    pub total_ticks: f64,
    /// Percent of one core.
    pub percent: f64,
    /// User time, percent.
    pub user_mode: f64,
    /// System time, percent.
    pub system_mode: f64,
}

/// Exec frames of `/v1/client/allocation/:id/exec` (`api.ExecStreamingOutput`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ExecOutput {
    /// Stdout bytes.
    pub stdout: Option<ExecData>,
    /// Stderr bytes.
    pub stderr: Option<ExecData>,
    /// The command ended.
    pub exited: bool,
    /// The exit code, with `exited`.
    pub result: Option<ExecResult>,
}

/// `api.ExecStreamingIOOperation`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ExecData {
    /// Bytes, base64.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub data: String,
    /// The stream ended.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub close: bool,
}

/// `api.ExecStreamingExitResult`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ExecResult {
    /// Exit code.
    pub exit_code: i32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_nulls_read_as_empty() {
        let a: Allocation = serde_json::from_str(
            r#"{"ID":"a1","JobID":"j","TaskStates":null,"ClientStatus":"pending","AllocatedResources":null}"#,
        )
        .unwrap_or_default();
        assert_eq!((a.id.as_str(), a.task_states.len()), ("a1", 0));
        let e: Events = serde_json::from_str("{}").unwrap_or_default();
        assert!(e.events.is_empty());
    }

    #[test]
    fn placement_failures_decode() {
        let e: Evaluation = serde_json::from_str(
            r#"{"ID":"e","JobID":"j","Status":"blocked","FailedTGAllocs":{"pod":{"NodesEvaluated":2,"DimensionExhausted":{"memory":2},"ConstraintFiltered":null}}}"#,
        )
        .unwrap_or_default();
        let m = e.failed_tg_allocs.get("pod").cloned().unwrap_or_default();
        assert_eq!(
            (m.nodes_evaluated, m.dimension_exhausted.get("memory")),
            (2, Some(&2))
        );
    }

    #[test]
    fn allocation_ip_from_shared_networks() {
        let a: Allocation = serde_json::from_str(
            r#"{"ID":"a1","AllocatedResources":{"Shared":{"Networks":[{"IP":"10.0.0.7","Mode":"host"}]}}}"#,
        )
        .unwrap_or_default();
        assert_eq!(a.ip(), Some("10.0.0.7"));
    }
}
