namespace EdgeSlm.EdgeModule.Telemetry;

/// <summary>What one telemetry message reports; <see cref="TelemetryCollector.ToJson"/> writes it.</summary>
/// <param name="Environment">Null when no environment sensor is configured.</param>
/// <param name="InferenceThreads">The thread count the thermal governor allows now.</param>
/// <param name="RssBytes">The process's resident set (working set).</param>
public sealed record TelemetrySnapshot(
    string SiteId,
    DateTimeOffset Time,
    TimeSpan Uptime,
    CpuTemperatureReading CpuTemperature,
    EnvironmentReading? Environment,
    InferenceStatisticsSnapshot Inference,
    int InferenceThreads,
    long RssBytes);
