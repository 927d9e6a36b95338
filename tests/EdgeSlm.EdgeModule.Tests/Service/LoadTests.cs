using System.Globalization;
using EdgeSlm.EdgeModule.Tests.Support;
using EdgeSlm.Kernels.Formats;
using EdgeSlm.Models.Conversion;
using EdgeSlm.Testing;

namespace EdgeSlm.EdgeModule.Tests.Service;

/// <summary>
/// A bounded load test for CI: a burst of 2,000 transcripts into the module (a child process) through mosquitto.
/// None may be lost, and memory must stay bounded: the peak RSS during the burst at most twice the idle RSS.
/// Throughput and latency are written to the output, never asserted (the machine is shared);
/// tests/EdgeSlm.Benchmarks measures them properly.
/// </summary>
public sealed class LoadTests(ConvertedModels models)
{
    private const int Burst = 2000;

    [Fact]
    public async Task Burst_of_2000_transcripts_loses_none_and_peak_RSS_stays_within_twice_idle()
    {
        using var broker = Mosquitto.Start();
        await using var client = await TestClient.ConnectAsync(broker.Port, "edgeslm/ld/intent", "edgeslm/ld/status");
        var tally = new AnswerTally(client, "edgeslm/ld/intent");
        using var module = ModuleProcess.Start("run", "--broker", broker.Url, "--site", "ld", "--profile", "native",
            "--model", models.Path(BundledModel.MiniLM, QuantType.Q4_0), "--threads", "1", "--Mqtt:ClientId", "edgeslm-ld");
        await client.WaitForAsync(m => m.Topic == "edgeslm/ld/status" && m.Payload == "online", TimeSpan.FromSeconds(60), "module online");
        string[] sentences = TestEnvironment.Sentences(Burst).ToArray();
        // Warm up (JIT, first-use allocations), then idle RSS.
        for (int i = 0; i < 32; i++) await tally.PublishAsync(client, "edgeslm/ld/transcript", $"warm-{i}", sentences[i]);
        await tally.WaitForAsync(32, TimeSpan.FromSeconds(60), "warm-up answers");
        await Task.Delay(500, TestContext.Current.CancellationToken);
        long idle = Rss(module.ProcessId);

        long peak = 0;
        using var sampling = new CancellationTokenSource();
        Task sampler = Task.Run(async () =>
        {
            while (!sampling.IsCancellationRequested)
            {
                peak = Math.Max(peak, Rss(module.ProcessId));
                await Task.Delay(20);
            }
        }, TestContext.Current.CancellationToken);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        for (int i = 0; i < Burst; i++) await tally.PublishAsync(client, "edgeslm/ld/transcript", $"ld-{i}", sentences[i]);
        await tally.WaitForAsync(32 + Burst, TimeSpan.FromSeconds(300), $"all {Burst} answers");
        double seconds = clock.Elapsed.TotalSeconds;
        sampling.Cancel();
        await sampler;
        await Task.Delay(500, TestContext.Current.CancellationToken);

        double[] latencies = tally.Latencies.Order().ToArray();
        TestContext.Current.TestOutputHelper?.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"burst of {Burst}: {Burst / seconds:F0} transcripts/s, end-to-end latency p50 {latencies[latencies.Length / 2]:F0} ms, max {latencies[^1]:F0} ms; " +
            $"RSS idle {idle / 1048576.0:F1} MiB, peak {peak / 1048576.0:F1} MiB ({(double)peak / idle:F2}x); {tally.Duplicates} duplicates"));
        Assert.Equal(0L, tally.Duplicates);
        Assert.Equal(Enumerable.Range(0, Burst).Select(i => $"ld-{i}").Concat(Enumerable.Range(0, 32).Select(i => $"warm-{i}")).Order(), tally.Ids.Order());
        Assert.True(idle > 0 && peak > 0, "RSS was read from /proc");
        Assert.True(peak <= 2 * idle, $"peak RSS {peak / 1048576.0:F1} MiB is more than twice the idle {idle / 1048576.0:F1} MiB");
    }

    /// <summary>Resident set size of a process, from /proc/PID/status (bytes); 0 when it cannot be read.</summary>
    public static long Rss(int pid)
    {
        try
        {
            foreach (string line in File.ReadLines($"/proc/{pid}/status"))
            {
                if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                {
                    return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
                }
            }
        }
        catch (IOException)
        {
        }
        return 0;
    }
}
