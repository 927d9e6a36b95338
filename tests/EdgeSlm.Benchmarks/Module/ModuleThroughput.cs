using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using MQTTnet;
using MQTTnet.Protocol;

namespace EdgeSlm.Benchmarks.Module;

/// <summary>
/// Transcripts per second through a real mosquitto: the module (<c>edgeslm run</c>, a child process) at each thread
/// count, fed a burst of real utterances at QoS 1 as fast as the broker takes them; the time from the first
/// publish to the last answer, the module's per-utterance latency (p50, p99) and its peak RSS.
/// </summary>
internal static class ModuleThroughput
{
    public static int Run(IReadOnlyList<int> threads, int count, string? output)
    {
        string[] sentences = Sentences(count);
        var table = new StringBuilder();
        table.AppendLine($"Burst of {count} transcripts (real utterances from the shared train splits) through mosquitto, QoS 1, native protocol, sample home intents, bundled MiniLM q4_0.");
        table.AppendLine();
        table.AppendLine("| threads | transcripts/s | wall s | answer latency p50 ms | p99 ms | module peak RSS MiB | idle RSS MiB |");
        table.AppendLine("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (int n in threads)
        {
            Result r = Measure(n, sentences).GetAwaiter().GetResult();
            table.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"| {n} | {r.PerSecond:F0} | {r.Seconds:F2} | {r.P50:F1} | {r.P99:F1} | {r.PeakRss / 1048576.0:F1} | {r.IdleRss / 1048576.0:F1} |"));
            Console.Error.WriteLine($"threads {n}: {r.PerSecond:F0}/s");
        }
        Console.WriteLine(table);
        if (output is not null) File.WriteAllText(output, table.ToString());
        return 0;
    }

    private sealed record Result(double PerSecond, double Seconds, double P50, double P99, long PeakRss, long IdleRss);

    private static async Task<Result> Measure(int threads, string[] sentences)
    {
        string directory = Path.Combine(Path.GetTempPath(), "edgeslm-bench-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(directory);
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(directory, (UnixFileMode)0x1FF);
        int port = FreePort();
        File.WriteAllText(Path.Combine(directory, "mosquitto.conf"), $"listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 1000000\nmax_inflight_messages 100\n");
        using Process broker = Process.Start(new ProcessStartInfo("mosquitto", ["-c", Path.Combine(directory, "mosquitto.conf")]) { RedirectStandardError = true })!;
        await Task.Delay(300);
        var module = Process.Start(new ProcessStartInfo(Path.Combine(AppContext.BaseDirectory, "edgeslm"),
            ["run", "--broker", $"mqtt://127.0.0.1:{port}", "--site", "bench", "--threads", threads.ToString(CultureInfo.InvariantCulture), "--Telemetry:IntervalSeconds", "3600", "--MaxBatch", "16"])
        { RedirectStandardError = true, RedirectStandardOutput = true })!;
        module.ErrorDataReceived += (_, _) => { };
        module.BeginErrorReadLine();
        try
        {
            using IMqttClient client = new MqttClientFactory().CreateMqttClient();
            var answers = new ConcurrentDictionary<string, double>();
            var online = new TaskCompletionSource();
            var done = new TaskCompletionSource();
            client.ApplicationMessageReceivedAsync += e =>
            {
                if (e.ApplicationMessage.Topic == "edgeslm/bench/status")
                {
                    if (Encoding.UTF8.GetString(e.ApplicationMessage.Payload) == "online") online.TrySetResult();
                    return Task.CompletedTask;
                }
                using var json = JsonDocument.Parse(e.ApplicationMessage.Payload);
                answers[json.RootElement.GetProperty("id").GetString()!] = json.RootElement.GetProperty("elapsedMs").GetDouble();
                if (answers.Count == sentences.Length) done.TrySetResult();
                return Task.CompletedTask;
            };
            await client.ConnectAsync(new MqttClientOptionsBuilder().WithTcpServer("127.0.0.1", port).WithClientId("bench").Build());
            await client.SubscribeAsync("edgeslm/bench/#", MqttQualityOfServiceLevel.AtLeastOnce);
            await online.Task.WaitAsync(TimeSpan.FromMinutes(3));
            // Warm up the JIT and caches with a few answers before the clock starts.
            for (int i = 0; i < 20; i++)
            {
                await client.PublishStringAsync("edgeslm/bench/transcript", $"{{\"id\":\"warm-{i}\",\"text\":\"turn on the kitchen lights\"}}", MqttQualityOfServiceLevel.AtLeastOnce);
            }
            while (answers.Count < 20) await Task.Delay(20);
            answers.Clear();
            long idle = Rss(module.Id, "VmRSS");

            long peak = 0;
            using var sampling = new CancellationTokenSource();
            Task sampler = Task.Run(async () =>
            {
                while (!sampling.IsCancellationRequested)
                {
                    peak = Math.Max(peak, Rss(module.Id, "VmRSS"));
                    await Task.Delay(50);
                }
            });
            var clock = Stopwatch.StartNew();
            for (int i = 0; i < sentences.Length; i++)
            {
                using var stream = new MemoryStream();
                using (var writer = new Utf8JsonWriter(stream))
                {
                    writer.WriteStartObject();
                    writer.WriteString("id", $"b-{i}");
                    writer.WriteString("text", sentences[i]);
                    writer.WriteEndObject();
                }
                await client.PublishBinaryAsync("edgeslm/bench/transcript", stream.ToArray(), MqttQualityOfServiceLevel.AtLeastOnce);
            }
            await done.Task.WaitAsync(TimeSpan.FromMinutes(10));
            double seconds = clock.Elapsed.TotalSeconds;
            sampling.Cancel();
            await sampler;
            double[] latencies = answers.Values.Order().ToArray();
            return new Result(sentences.Length / seconds, seconds, latencies[latencies.Length / 2], latencies[(int)(latencies.Length * 0.99)], Math.Max(peak, Rss(module.Id, "VmHWM")), idle);
        }
        finally
        {
            module.Kill(entireProcessTree: true);
            broker.Kill();
            try { Directory.Delete(directory, true); } catch (IOException) { }
        }
    }

    private static long Rss(int pid, string field)
    {
        try
        {
            foreach (string line in File.ReadLines($"/proc/{pid}/status"))
            {
                if (line.StartsWith(field + ":", StringComparison.Ordinal))
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

    private static string[] Sentences(int count)
    {
        string datasets = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "..", "..", "..", "..", "..", "..", "shared", "datasets"));
        var all = new List<string>();
        foreach (string file in new[] { "ha_intents_en/train.jsonl", "snips2017/train.jsonl", "hwu64/train.jsonl" })
        {
            foreach (string line in File.ReadLines(Path.Combine(datasets, file)))
            {
                using var json = JsonDocument.Parse(line);
                all.Add(json.RootElement.GetProperty("text").GetString()!.Trim());
            }
        }
        var random = new Random(7);
        return Enumerable.Range(0, count).Select(_ => all[random.Next(all.Count)]).ToArray();
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
