using EdgeSlm.EdgeModule.Telemetry;

namespace EdgeSlm.EdgeModule.Service;

/// <summary>What the module has done since it started: for logs, telemetry and tests.</summary>
public sealed class ModuleCounters
{
    /// <summary>Answers, rejected messages, latency percentiles and queue depth (what telemetry publishes).</summary>
    public InferenceStatistics Inference { get; } = new();

    /// <summary>Batches that failed for a reason other than their input (a bug): left unacknowledged.</summary>
    public long Failures;

    /// <summary>Messages the broker marked as redelivered (DUP).</summary>
    public long Redelivered;

    /// <summary>Queued messages dropped because their connection had gone: the broker sends them again.</summary>
    public long StaleSkipped;
}
