using System.Buffers;
using System.Text.Json;

namespace EdgeSlm.EdgeModule.Telemetry;

/// <summary>
/// Gathers one <see cref="TelemetrySnapshot"/> per call: reads the CPU temperature (and hands it to the
/// thermal governor, which therefore steps once per telemetry interval), reads the environment sensor if
/// there is one, and takes the inference statistics. Publishing the JSON (on the site's telemetry topic) is the
/// caller's job. The sensors stay owned by the caller.
/// </summary>
public sealed class TelemetryCollector
{
    private readonly CpuTemperatureSensor _cpuTemperature;
    private readonly EnvironmentSensor? _environment;
    private readonly InferenceStatistics _statistics;
    private readonly ThermalGovernor _governor;
    private readonly TimeProvider _timeProvider;
    private readonly long _started;

    /// <param name="siteId">One MQTT topic level: not empty, no '/', '+', '#' or control characters.</param>
    /// <param name="timeProvider">The clock; <see cref="TimeProvider.System"/> when null. Uptime counts from construction.</param>
    public TelemetryCollector(
        string siteId,
        CpuTemperatureSensor cpuTemperature,
        EnvironmentSensor? environment,
        InferenceStatistics statistics,
        ThermalGovernor governor,
        TimeProvider? timeProvider = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(siteId);
        if (siteId.AsSpan().IndexOfAny("/+#") >= 0 || siteId.Any(char.IsControl))
        {
            throw new ArgumentException($"The site id '{siteId}' must be a single MQTT topic level: no '/', '+', '#' or control characters.", nameof(siteId));
        }

        ArgumentNullException.ThrowIfNull(cpuTemperature);
        ArgumentNullException.ThrowIfNull(statistics);
        ArgumentNullException.ThrowIfNull(governor);
        SiteId = siteId;
        _cpuTemperature = cpuTemperature;
        _environment = environment;
        _statistics = statistics;
        _governor = governor;
        _timeProvider = timeProvider ?? TimeProvider.System;
        _started = _timeProvider.GetTimestamp();
    }

    public string SiteId { get; }


    public TelemetrySnapshot Collect()
    {
        CpuTemperatureReading cpu = _cpuTemperature.Read();
        if (cpu.TemperatureC is { } celsius)
        {
            _governor.Observe(celsius);
        }

        EnvironmentReading? environment = _environment?.Read();
        return new TelemetrySnapshot(
            SiteId,
            _timeProvider.GetUtcNow(),
            _timeProvider.GetElapsedTime(_started),
            cpu,
            environment,
            _statistics.Snapshot(),
            _governor.Threads,
            Environment.WorkingSet);
    }

    /// <summary>
    /// The message body, UTF-8 JSON:
    /// <c>{"siteId","time","uptimeSeconds","cpuTemperatureC"|null,
    /// "environment":{"sensor","temperatureC","humidityPercent","pressureHpa","error"}|null,
    /// "inference":{"count","errors","p50Ms","p99Ms","queueDepth","threads"},"rssBytes"}</c>.
    /// A failed environment reading has null values and the reason in "error"; an unavailable CPU
    /// temperature is null. Values are rounded to what the sensors resolve.
    /// </summary>
    public static ReadOnlyMemory<byte> ToJson(TelemetrySnapshot snapshot)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        var buffer = new ArrayBufferWriter<byte>(512);
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("siteId", snapshot.SiteId);
            json.WriteString("time", snapshot.Time.ToUniversalTime());
            json.WriteNumber("uptimeSeconds", (long)snapshot.Uptime.TotalSeconds);
            WriteNumberOrNull(json, "cpuTemperatureC", snapshot.CpuTemperature.TemperatureC, 2);

            if (snapshot.Environment is { } environment)
            {
                json.WriteStartObject("environment");
                json.WriteString("sensor", environment.Sensor);
                WriteNumberOrNull(json, "temperatureC", environment.TemperatureC, 2);
                WriteNumberOrNull(json, "humidityPercent", environment.HumidityPercent, 2);
                WriteNumberOrNull(json, "pressureHpa", environment.PressureHpa, 2);
                json.WriteString("error", environment.Error);
                json.WriteEndObject();
            }
            else
            {
                json.WriteNull("environment");
            }

            InferenceStatisticsSnapshot inference = snapshot.Inference;
            json.WriteStartObject("inference");
            json.WriteNumber("count", inference.Count);
            json.WriteNumber("errors", inference.Errors);
            WriteNumberOrNull(json, "p50Ms", inference.P50Ms, 3);
            WriteNumberOrNull(json, "p99Ms", inference.P99Ms, 3);
            json.WriteNumber("queueDepth", inference.QueueDepth);
            json.WriteNumber("threads", snapshot.InferenceThreads);
            json.WriteEndObject();

            json.WriteNumber("rssBytes", snapshot.RssBytes);
            json.WriteEndObject();
        }

        return buffer.WrittenMemory;
    }

    private static void WriteNumberOrNull(Utf8JsonWriter json, string name, double? value, int decimals)
    {
        // JSON has no NaN or infinity; a reading that produced one is not a value.
        if (value is { } number && double.IsFinite(number))
        {
            json.WriteNumber(name, Math.Round(number, decimals));
        }
        else
        {
            json.WriteNull(name);
        }
    }
}
