using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Net;
using System.Text.Json;
using System.Text;
using MQTTnet.Protocol;
using MQTTnet;

namespace EdgeSlm.Benchmarks.Module;

/// <summary>
/// The module under load through a real mosquitto: <c>edgeslm run</c> (a child process) at each thread count, fed
/// real utterances at QoS 1 by a bounded generator on loopback that stops by itself. Two loads per thread count:
/// <list type="bullet">
/// <item>a burst: every transcript published as fast as the broker takes them; throughput from the first publish to
/// the last answer, latency (end to end, and inside the module), peak RSS against idle, and what was shed;</item>
/// <item>a sustained rate: the highest rate the module keeps up with (10 s trials, starting just under the burst
/// throughput, 15% lower after each miss), then held for a longer run.</item>
/// </list>
/// "Keeps up": every answer in within 2 s of the last publish, and end-to-end p99 under 500 ms.
/// </summary>
internal static class ModuleThroughput
{
    private const int TrialSeconds = 10;
    private const int MaxTrials = 6;

    public static int Run(IReadOnlyList<int> threads, int count, int sustainSeconds, string? output)
    {
        string[] sentences = Sentences(Math.Max(count, 1000));
        var table = new StringBuilder();
        table.AppendLine($"Bundled MiniLM q4_0, sample home intents, native protocol, QoS 1 through mosquitto on loopback; real utterances from the train splits in tests/data. Load average at the start: {LoadAverage()}.");
        table.AppendLine();
        table.AppendLine($"| threads | load | transcripts | per s | end-to-end p50 / p99 / max ms | in module p50 / p99 / max ms | RSS idle / peak MiB (ratio) | lost | shed |");
        table.AppendLine("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (int n in threads)
        {
            using var bench = Bench.StartAsync(n).GetAwaiter().GetResult();
            Result burst = bench.RunAsync(sentences.Take(count).ToArray(), rate: null).GetAwaiter().GetResult();
            table.AppendLine(Row(n, $"burst of {count}", burst));
            Console.Error.WriteLine($"threads {n}: burst {burst.PerSecond:F0}/s, load average {LoadAverage()}");
            if (sustainSeconds == 0) continue;

            double rate = Math.Floor(burst.PerSecond * 0.95);
            Result? kept = null;
            for (int trial = 0; trial < MaxTrials && kept is null; trial++)
            {
                Result r = bench.RunAsync(Cycle(sentences, (int)(rate * TrialSeconds)), rate).GetAwaiter().GetResult();
                Console.Error.WriteLine($"threads {n}: trial at {rate:F0}/s: {(r.KeptUp ? "kept up" : "fell behind")} (p99 {r.EndToEnd.P99:F0} ms, drain {r.DrainSeconds:F1} s)");
                if (r.KeptUp) kept = r;
                else rate = Math.Floor(rate * 0.85);
            }
            if (kept is null)
            {
                table.AppendLine($"| {n} | no steady rate found in {MaxTrials} trials | | | | | | | |");
                continue;
            }
            Result sustained = bench.RunAsync(Cycle(sentences, (int)(rate * sustainSeconds)), rate).GetAwaiter().GetResult();
            table.AppendLine(Row(n, $"{rate:F0}/s for {sustainSeconds} s{(sustained.KeptUp ? "" : " (fell behind)")}", sustained));
            Console.Error.WriteLine($"threads {n}: sustained {rate:F0}/s: {(sustained.KeptUp ? "kept up" : "fell behind")}, load average {LoadAverage()}");
        }
        table.AppendLine();
        table.AppendLine($"Load average at the end: {LoadAverage()}. End to end: from the generator's publish to the answer's arrival. In module: from the module receiving the message to publishing its answer (the `elapsedMs` field). Shed: error answers (the module never sheds: a full queue pauses its reading and the broker holds the rest).");
        Console.WriteLine(table);
        if (output is not null) File.WriteAllText(output, table.ToString());
        return 0;
    }

    private static string Row(int threads, string load, Result r) => string.Create(CultureInfo.InvariantCulture,
        $"| {threads} | {load} | {r.Count} | {r.PerSecond:F0} | {r.EndToEnd.P50:F0} / {r.EndToEnd.P99:F0} / {r.EndToEnd.Max:F0} | {r.InModule.P50:F1} / {r.InModule.P99:F1} / {r.InModule.Max:F1} | {r.IdleRss / 1048576.0:F1} / {r.PeakRss / 1048576.0:F1} ({(double)r.PeakRss / r.IdleRss:F2}x) | {r.Lost} | {r.Shed} |");

    private static string[] Cycle(string[] sentences, int count) => Enumerable.Range(0, Math.Max(count, 1)).Select(i => sentences[i % sentences.Length]).ToArray();

    private sealed record Latency(double P50, double P99, double Max)
    {
        public static Latency Of(IEnumerable<double> values)
        {
            double[] sorted = values.Order().ToArray();
            return sorted.Length == 0 ? new Latency(0, 0, 0) : new Latency(sorted[sorted.Length / 2], sorted[Math.Min(sorted.Length - 1, (int)(sorted.Length * 0.99))], sorted[^1]);
        }
    }

    private sealed record Result(int Count, double PerSecond, Latency EndToEnd, Latency InModule, long IdleRss, long PeakRss, int Lost, int Shed, double DrainSeconds, bool KeptUp);

    /// <summary>One broker, one module and one generator client, reused by the runs of one thread count.</summary>
    private sealed class Bench : IDisposable
    {
        private readonly string _directory;
        private readonly Process _broker, _module;
        private readonly IMqttClient _client;
        private ConcurrentDictionary<string, (double EndToEnd, double InModule)> _answers = new();
        private ConcurrentDictionary<string, long> _sent = new();
        private int _shed, _run;
        private TaskCompletionSource _done = new();
        private int _expected;

        private Bench(string directory, Process broker, Process module, IMqttClient client)
        {
            _directory = directory;
            _broker = broker;
            _module = module;
            _client = client;
        }

        public static async Task<Bench> StartAsync(int threads)
        {
            string directory = Path.Combine(Path.GetTempPath(), "edgeslm-bench-" + Guid.NewGuid().ToString("N")[..8]);
            Directory.CreateDirectory(directory);
            if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(directory, (UnixFileMode)0x1FF);
            int port = FreePort();
            // mosquitto's default max_queued_messages (1000) would drop the rest of a burst for a slow subscriber.
            File.WriteAllText(Path.Combine(directory, "mosquitto.conf"), $"listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 1000000\nmax_inflight_messages 100\n");
            Process broker = Process.Start(new ProcessStartInfo("mosquitto", ["-c", Path.Combine(directory, "mosquitto.conf")]) { RedirectStandardError = true })!;
            // Wait until mosquitto listens (it takes longer on a busy machine).
            for (int attempt = 0; attempt < 100; attempt++)
            {
                try
                {
                    using var probe = new System.Net.Sockets.TcpClient();
                    await probe.ConnectAsync(IPAddress.Loopback, port);
                    break;
                }
                catch (System.Net.Sockets.SocketException)
                {
                    await Task.Delay(100);
                }
            }
            Process module = Process.Start(new ProcessStartInfo(Path.Combine(AppContext.BaseDirectory, "edgeslm"),
                ["run", "--broker", $"mqtt://127.0.0.1:{port}", "--site", "bench", "--profile", "native", "--threads", threads.ToString(CultureInfo.InvariantCulture), "--Telemetry:IntervalSeconds", "3600"])
            { RedirectStandardError = true, RedirectStandardOutput = true })!;
            module.ErrorDataReceived += (_, _) => { };
            module.BeginErrorReadLine();
            IMqttClient client = new MqttClientFactory().CreateMqttClient();
            var bench = new Bench(directory, broker, module, client);
            var online = new TaskCompletionSource();
            client.ApplicationMessageReceivedAsync += e =>
            {
                if (e.ApplicationMessage.Topic == "edgeslm/bench/status")
                {
                    if (Encoding.UTF8.GetString(e.ApplicationMessage.Payload) == "online") online.TrySetResult();
                    return Task.CompletedTask;
                }
                bench.OnAnswer(e.ApplicationMessage.Topic, System.Buffers.BuffersExtensions.ToArray(e.ApplicationMessage.Payload));
                return Task.CompletedTask;
            };
            await client.ConnectAsync(new MqttClientOptionsBuilder().WithTcpServer("127.0.0.1", port).WithClientId("bench").Build());
            // Not edgeslm/bench/#: that would include the transcripts themselves.
            foreach (string topic in new[] { "edgeslm/bench/status", "edgeslm/bench/intent", "edgeslm/bench/error" })
            {
                await client.SubscribeAsync(topic, MqttQualityOfServiceLevel.AtLeastOnce);
            }
            await online.Task.WaitAsync(TimeSpan.FromMinutes(3));
            // Warm up the JIT and caches before anything is measured.
            await bench.RunAsync(Enumerable.Repeat("turn on the kitchen lights", 50).ToArray(), rate: null);
            return bench;
        }

        private void OnAnswer(string topic, byte[] payload)
        {
            using var json = JsonDocument.Parse(payload);
            string id = json.RootElement.GetProperty("id").GetString()!;
            if (!id.StartsWith($"r{_run}-", StringComparison.Ordinal)) return;
            if (topic == "edgeslm/bench/error") Interlocked.Increment(ref _shed);
            double inModule = json.RootElement.TryGetProperty("elapsedMs", out JsonElement e) ? e.GetDouble() : 0;
            double endToEnd = _sent.TryGetValue(id, out long sent) ? Stopwatch.GetElapsedTime(sent).TotalMilliseconds : 0;
            if (_answers.TryAdd(id, (endToEnd, inModule)) && _answers.Count == _expected) _done.TrySetResult();
        }

        /// <summary>Publishes <paramref name="sentences"/> as fast as possible (<paramref name="rate"/> null) or at a steady rate, and waits for every answer.</summary>
        public async Task<Result> RunAsync(string[] sentences, double? rate)
        {
            _run++;
            _answers = new();
            _sent = new();
            _shed = 0;
            _expected = sentences.Length;
            _done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            await Task.Delay(1000);
            long idle = Rss(_module.Id);
            long peak = idle;
            using var sampling = new CancellationTokenSource();
            Task sampler = Task.Run(async () =>
            {
                while (!sampling.IsCancellationRequested)
                {
                    peak = Math.Max(peak, Rss(_module.Id));
                    await Task.Delay(20);
                }
            });
            var clock = Stopwatch.StartNew();
            for (int i = 0; i < sentences.Length; i++)
            {
                if (rate is double perSecond)
                {
                    TimeSpan due = TimeSpan.FromSeconds(i / perSecond) - clock.Elapsed;
                    if (due > TimeSpan.FromMilliseconds(1)) await Task.Delay(due);
                }
                string id = $"r{_run}-{i}";
                byte[] payload = JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, string> { ["id"] = id, ["text"] = sentences[i] }, BenchJson.Default.DictionaryStringString);
                _sent[id] = Stopwatch.GetTimestamp();
                await _client.PublishBinaryAsync("edgeslm/bench/transcript", payload, MqttQualityOfServiceLevel.AtLeastOnce);
            }
            double published = clock.Elapsed.TotalSeconds;
            await Task.WhenAny(_done.Task, Task.Delay(rate is null ? TimeSpan.FromMinutes(15) : TimeSpan.FromSeconds(60)));
            double seconds = clock.Elapsed.TotalSeconds;
            sampling.Cancel();
            await sampler;
            Latency endToEnd = Latency.Of(_answers.Values.Select(a => a.EndToEnd));
            double drain = seconds - published;
            int lost = sentences.Length - _answers.Count;
            return new Result(sentences.Length, _answers.Count / seconds, endToEnd, Latency.Of(_answers.Values.Select(a => a.InModule)),
                idle, peak, lost, _shed, drain, lost == 0 && drain <= 2 && endToEnd.P99 < 500);
        }

        public void Dispose()
        {
            _client.Dispose();
            _module.Kill(entireProcessTree: true);
            _broker.Kill();
            _module.Dispose();
            _broker.Dispose();
            try { Directory.Delete(_directory, true); } catch (IOException) { }
        }
    }

    private static string LoadAverage()
    {
        try
        {
            return string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3));
        }
        catch (IOException)
        {
            return "unknown";
        }
    }

    private static long Rss(int pid)
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

    private static string[] Sentences(int count)
    {
        string datasets = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "..", "..", "..", "..", "data"));
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

[System.Text.Json.Serialization.JsonSerializable(typeof(Dictionary<string, string>))]
internal sealed partial class BenchJson : System.Text.Json.Serialization.JsonSerializerContext;
