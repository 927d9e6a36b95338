using System.Text.Json;
using EdgeSlm.EdgeModule.Tests.Support;
using EdgeSlm.Kernels.Formats;
using EdgeSlm.Models.Conversion;
using EdgeSlm.Testing;

namespace EdgeSlm.EdgeModule.Tests.Service;

/// <summary>
/// Faults while transcripts are in flight: the broker and the module SIGKILLed and restarted again and again, the
/// model file corrupted under a running module, corrupt files at start-up, a cache directory that cannot be written.
/// Every transcript must be answered; duplicates (an answer for an id already answered, which QoS 1 allows after a
/// crash) are counted and written to the test output.
/// </summary>
[Collection(FaultCollection.Name)]
public sealed class FaultTests(ConvertedModels models)
{
    private const int Transcripts = 1000;
    private const int Kills = 10;
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan AllAnswered = TimeSpan.FromSeconds(300);

    private static void Report(string line) => TestContext.Current.TestOutputHelper?.WriteLine(line);

    [Fact]
    public async Task Broker_killed_10_times_while_1000_transcripts_are_in_flight_answers_every_one()
    {
        using var broker = Mosquitto.Start();
        await using var client = await TestClient.ConnectAsync(broker.Port, "edgeslm/fb/intent");
        var tally = new AnswerTally(client, "edgeslm/fb/intent");
        await using var module = await InProcessModule.StartAsync(models, broker.Url, new Dictionary<string, string?>
        {
            ["SiteId"] = "fb",
            ["Profiles"] = "native",
            // Reconnect quickly, so ten restarts fit in a short test; the default backoff is for fleets.
            ["Mqtt:ReconnectMinMilliseconds"] = "100",
            ["Mqtt:ReconnectMaxMilliseconds"] = "1000",
        });
        string[] sentences = TestEnvironment.Sentences(Transcripts).ToArray();
        Task publishing = Task.Run(async () =>
        {
            for (int i = 0; i < sentences.Length; i++) await tally.PublishAsync(client, "edgeslm/fb/transcript", $"fb-{i}", sentences[i]);
        }, TestContext.Current.CancellationToken);
        int killedAt = 0;
        for (int kill = 1; kill <= Kills; kill++)
        {
            // Spread the kills over the stream: each one after another ~1/12 of the transcripts has been answered.
            try
            {
                await tally.WaitForAsync(kill * Transcripts / (Kills + 2), Wait, $"answers before kill {kill}");
            }
            catch (TimeoutException e)
            {
                var s = module.Counters.Inference.Snapshot();
                throw new TimeoutException($"{e.Message}; module: {s.Count} answered, {s.Errors} errors, {module.Counters.Redelivered} redelivered, {module.Counters.StaleSkipped} stale, {module.Counters.Failures} failed batches, queue {s.QueueDepth}; broker log: {string.Join(" | ", broker.Log().Split('\n').TakeLast(15))}", e);
            }
            killedAt = tally.Distinct;
            broker.Kill();
            await Task.Delay(200, TestContext.Current.CancellationToken);
            broker.Launch();
        }
        await publishing;
        await tally.WaitForAsync(Transcripts, AllAnswered, $"all {Transcripts} answers after {Kills} broker kills");
        await Task.Delay(500, TestContext.Current.CancellationToken); // late duplicates
        Report($"broker SIGKILLed and restarted {Kills} times (last at {killedAt} answered): {Transcripts} transcripts, {tally.Distinct} answered, " +
            $"{Transcripts - tally.Distinct} lost, {tally.Duplicates} duplicate answers, {module.Counters.Redelivered} redeliveries seen by the module");
        Assert.True(killedAt < Transcripts, "the last kill came while transcripts were still in flight");
        Assert.Equal(Enumerable.Range(0, Transcripts).Select(i => $"fb-{i}").Order(), tally.Ids.Order());
    }

    [Fact]
    public async Task Module_process_killed_10_times_while_1000_transcripts_are_in_flight_answers_every_one()
    {
        using var broker = Mosquitto.Start();
        await using var client = await TestClient.ConnectAsync(broker.Port, "edgeslm/fm/intent", "edgeslm/fm/status");
        var tally = new AnswerTally(client, "edgeslm/fm/intent");
        string[] args = ["run", "--broker", broker.Url, "--site", "fm", "--profile", "native", "--model", models.Path(BundledModel.MiniLM, QuantType.Q4_0),
            "--threads", "1", "--Mqtt:ClientId", "edgeslm-fm", "--Mqtt:ReconnectMinMilliseconds", "100"];
        ModuleProcess module = ModuleProcess.Start(args);
        try
        {
            await client.WaitForAsync(m => m.Topic == "edgeslm/fm/status" && m.Payload == "online", Wait, "module online");
            string[] sentences = TestEnvironment.Sentences(Transcripts).ToArray();
            Task publishing = Task.Run(async () =>
            {
                for (int i = 0; i < sentences.Length; i++) await tally.PublishAsync(client, "edgeslm/fm/transcript", $"fm-{i}", sentences[i]);
            }, TestContext.Current.CancellationToken);
            int killedAt = 0;
            for (int kill = 1; kill <= Kills; kill++)
            {
                await tally.WaitForAsync(kill * Transcripts / (Kills + 2), Wait, $"answers before kill {kill}");
                killedAt = tally.Distinct;
                module.Kill();
                module.Dispose();
                module = ModuleProcess.Start(args);
            }
            await publishing;
            await tally.WaitForAsync(Transcripts, AllAnswered, $"all {Transcripts} answers after {Kills} module kills");
            await Task.Delay(500, TestContext.Current.CancellationToken);
            Report($"module SIGKILLed and restarted {Kills} times (last at {killedAt} answered): {Transcripts} transcripts, {tally.Distinct} answered, " +
                $"{Transcripts - tally.Distinct} lost, {tally.Duplicates} duplicate answers");
            Assert.True(killedAt < Transcripts, "the last kill came while transcripts were still in flight");
            Assert.Equal(Enumerable.Range(0, Transcripts).Select(i => $"fm-{i}").Order(), tally.Ids.Order());
        }
        finally
        {
            module.Dispose();
        }
    }

    [Fact]
    public async Task Model_file_corrupted_at_run_time_in_place_or_by_rename_keeps_the_loaded_model_and_reports_the_error()
    {
        string directory = Path.Combine(Path.GetTempPath(), "edgeslm-model-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(directory);
        string good = models.Path(BundledModel.MiniLM, QuantType.Q4_0);
        string model = Path.Combine(directory, "model.gguf");
        File.Copy(good, model);
        try
        {
            using var broker = Mosquitto.Start();
            await using var client = await TestClient.ConnectAsync(broker.Port, "edgeslm/cm/#");
            await using var module = await InProcessModule.StartAsync(models, broker.Url, new Dictionary<string, string?> { ["SiteId"] = "cm", ["Model"] = model, ["Threads"] = "2" });
            Received ready = await client.WaitForAsync(m => m.Topic == "edgeslm/cm/model/status", Wait, "model status");
            Assert.Equal("ready", ready.Json.GetProperty("status").GetString());
            // Two threads and no EncoderThreads: the count per input length was measured at start (which count won
            // depends on this machine; EncoderThreadPlanTests test the choice).
            Assert.EndsWith("(measured)", ready.Json.GetProperty("threads").GetString());
            await AssertAnsweredAsync(client, "c-1");

            // Overwritten in place (same inode, cut short): a mapping of it would now fault past the new end.
            using (var file = new FileStream(model, FileMode.Open, FileAccess.Write))
            {
                file.SetLength(4096);
                file.Write("GGUF garbage, not a model"u8);
            }
            Received inPlace = await WaitForStatusAsync(client, "error", 1);
            Assert.Contains(model, inPlace.Json.GetProperty("error").GetString());
            await AssertAnsweredAsync(client, "c-2");

            // Replaced by rename (a new inode), with a file that is not GGUF at all.
            string partial = Path.Combine(directory, "model.gguf.new");
            File.WriteAllText(partial, "this is not a model, only some words in a file");
            File.Move(partial, model, overwrite: true);
            Received renamed = await WaitForStatusAsync(client, "error", 2);
            Assert.Contains("not a GGUF file", renamed.Json.GetProperty("error").GetString());
            await AssertAnsweredAsync(client, "c-3");

            // The good model back: ready again.
            File.Copy(good, partial, overwrite: true);
            File.Move(partial, model, overwrite: true);
            await WaitForStatusAsync(client, "ready", 2);
            await AssertAnsweredAsync(client, "c-4");
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    private static async Task<Received> WaitForStatusAsync(TestClient client, string status, int count)
    {
        bool Is(Received m) => m.Topic == "edgeslm/cm/model/status" && m.Json.GetProperty("status").GetString() == status;
        IReadOnlyCollection<Received> all = await client.WaitForAsync(all => all.Count(Is) >= count, Wait, $"model status '{status}' #{count}");
        return all.Where(Is).ElementAt(count - 1);
    }

    private static async Task AssertAnsweredAsync(TestClient client, string id)
    {
        await client.PublishAsync("edgeslm/cm/transcript", AnswerTally.Request(id, "i'd like the kitchen light on, thanks"));
        Received answer = await client.WaitForAsync(m => m.Topic == "edgeslm/cm/intent" && m.Payload.Contains($"\"{id}\""), Wait, $"answer {id}");
        Assert.Equal("HassTurnOn", answer.Json.GetProperty("intent").GetString());
    }

    [Fact]
    public void Corrupt_intents_file_at_start_up_exits_1_with_one_line()
    {
        string intents = Path.Combine(Path.GetTempPath(), $"edgeslm-corrupt-{Guid.NewGuid():N}.yaml");
        File.WriteAllText(intents, "intents: [this is: not {valid");
        try
        {
            (int exit, string output) = ModuleProcess.RunToEnd(TimeSpan.FromSeconds(60), "run", "--model", models.Path(BundledModel.MiniLM, QuantType.Q4_0),
                "--intents", intents, "--broker", "mqtt://127.0.0.1:1");
            Assert.Equal(1, exit);
            string[] lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            string line = Assert.Single(lines, l => l.StartsWith("edgeslm: cannot start:", StringComparison.Ordinal));
            Assert.Contains("not valid YAML", line);
            Assert.DoesNotContain("   at ", output);
        }
        finally
        {
            File.Delete(intents);
        }
    }

    [Fact]
    public async Task Unwritable_cache_directory_converts_the_bundled_model_in_memory_and_says_so()
    {
        // Tests run as root, for whom permissions do not stop writes; a directory under a regular file fails for anyone.
        string blocker = Path.Combine(Path.GetTempPath(), $"edgeslm-not-a-directory-{Guid.NewGuid():N}");
        File.WriteAllText(blocker, "a file where the cache's parent directory should be");
        try
        {
            using var broker = Mosquitto.Start();
            await using var client = await TestClient.ConnectAsync(broker.Port, "edgeslm/ro/#");
            await using var module = await InProcessModule.StartAsync(models, broker.Url, new Dictionary<string, string?>
            {
                ["SiteId"] = "ro",
                ["Model"] = "",
                ["CacheDirectory"] = Path.Combine(blocker, "cache"),
                ["Threads"] = "2",
                ["EncoderThreads"] = "1",
            });
            Received status = await client.WaitForAsync(m => m.Topic == "edgeslm/ro/model/status", Wait, "model status");
            Assert.Equal("ready", status.Json.GetProperty("status").GetString());
            Assert.True(status.Json.GetProperty("convertedInMemory").GetBoolean());
            Assert.Equal("1 thread for every input", status.Json.GetProperty("threads").GetString());
            Assert.Contains("converted in memory", status.Json.GetProperty("message").GetString());
            await client.PublishAsync("edgeslm/ro/transcript", AnswerTally.Request("ro-1", "turn off the bedroom lights"));
            Received answer = await client.WaitForAsync(m => m.Topic == "edgeslm/ro/intent", Wait, "answer");
            Assert.Equal("HassTurnOff", answer.Json.GetProperty("intent").GetString());
            Assert.True(File.Exists(blocker) && !Directory.Exists(blocker));
        }
        finally
        {
            File.Delete(blocker);
        }
    }

    [Fact]
    public async Task Broker_killed_and_restarted_mid_stream_loses_none_of_200_queued_transcripts()
    {
        using var broker = Mosquitto.Start();
        await using var client = await TestClient.ConnectAsync(broker.Port, "edgeslm/bk/intent");
        await using var module = await InProcessModule.StartAsync(models, broker.Url, new Dictionary<string, string?> { ["SiteId"] = "bk" });
        string[] sentences = TestEnvironment.Sentences(200).ToArray();
        for (int i = 0; i < sentences.Length; i++)
        {
            await client.PublishAsync("edgeslm/bk/transcript", AnswerTally.Request($"bk-{i}", sentences[i]));
        }
        await client.WaitForAsync(all => all.Count >= 20, Wait, "the first answers");
        broker.Kill();
        await Task.Delay(500, TestContext.Current.CancellationToken);
        broker.Launch();
        var answered = await client.WaitForAsync(all => all.Select(AnswerId).Where(id => id.StartsWith("bk-", StringComparison.Ordinal)).Distinct().Count() == 200, TimeSpan.FromSeconds(180), "all 200 answers");
        Assert.Equal(Enumerable.Range(0, 200).Select(i => $"bk-{i}").Order(), answered.Select(AnswerId).Distinct().Order());
    }

    private static string AnswerId(Received m) => m.Json.TryGetProperty("id", out JsonElement id) && id.ValueKind == JsonValueKind.String ? id.GetString()! : "";
}

/// <summary>
/// The fault tests run alone: a killed broker must save what it acknowledged, and mosquitto saves from its event
/// loop, which falls behind on a CPU that other tests keep busy (docs/reliability.md).
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class FaultCollection
{
    public const string Name = "Faults (run alone)";
}
