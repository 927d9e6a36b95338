using EdgeSlm.EdgeModule.Tests.Support;
using EdgeSlm.Kernels.Formats;
using EdgeSlm.Models.Conversion;
using EdgeSlm.Testing;

namespace EdgeSlm.EdgeModule.Tests.Service;

/// <summary>Credentials stay out of logs; TLS never falls back to plaintext.</summary>
public sealed class SecurityTests(ConvertedModels models)
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(90);

    [Fact]
    public async Task Passwords_never_appear_in_the_logs_connected_or_failing()
    {
        const string password = "pw-9f3c1e-do-not-log";
        using var broker = Mosquitto.Start();
        await using var client = await TestClient.ConnectAsync(broker.Port, "edgeslm/sec/status");
        string model = models.Path(BundledModel.MiniLM, QuantType.Q4_0);
        using (var module = ModuleProcess.Start("run", "--broker", broker.Url, "--site", "sec", "--model", model, "--threads", "1",
            "--Mqtt:Username", "edge-device", "--Mqtt:Password", password))
        {
            await client.WaitForAsync(m => m.Topic == "edgeslm/sec/status" && m.Payload == "online", Wait, "module online with credentials");
            await client.PublishAsync("edgeslm/sec/transcript", "{not json");
            await Task.Delay(1000, TestContext.Current.CancellationToken);
            module.Kill();
            Assert.Contains("Connected to the broker", module.Log);
            Assert.DoesNotContain(password, module.Log);
        }
        // Failing: a broker that is not there, so the reconnect path logs its errors.
        using (var failing = ModuleProcess.Start("run", "--broker", $"mqtt://127.0.0.1:{Mosquitto.FreePort()}", "--site", "sec2", "--model", model,
            "--threads", "1", "--Mqtt:Username", "edge-device", "--Mqtt:Password", password, "--Mqtt:ReconnectMinMilliseconds", "50"))
        {
            var deadline = DateTime.UtcNow + Wait;
            while (!failing.Log.Contains("Cannot connect to the broker") && DateTime.UtcNow < deadline)
            {
                await Task.Delay(200, TestContext.Current.CancellationToken);
            }
            failing.Kill();
            Assert.Contains("Cannot connect to the broker", failing.Log);
            Assert.DoesNotContain(password, failing.Log);
        }
    }

    [Fact]
    public async Task A_tls_setting_never_falls_back_to_a_plaintext_broker()
    {
        using var broker = Mosquitto.Start();
        await using var client = await TestClient.ConnectAsync(broker.Port, "edgeslm/plain/status");
        // The broker only speaks plaintext; the module is told mqtts:// and must not settle for less.
        await using var module = await InProcessModule.StartAsync(models, $"mqtts://127.0.0.1:{broker.Port}",
            new Dictionary<string, string?> { ["SiteId"] = "plain" }, waitForConnection: false);
        await Task.Delay(TimeSpan.FromSeconds(4), TestContext.Current.CancellationToken);
        Assert.False(module.Service.Connected.IsCompleted);
        Assert.DoesNotContain(client.Messages, m => m.Payload == "online");
    }
}
