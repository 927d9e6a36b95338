using System.Diagnostics;
using System.Text;
using EdgeSlm.EdgeModule.Configuration;
using EdgeSlm.EdgeModule.Hosting;
using EdgeSlm.EdgeModule.Messaging;
using EdgeSlm.EdgeModule.Protocols;
using EdgeSlm.EdgeModule.Service;
using EdgeSlm.EdgeModule.Wyoming;
using MQTTnet.Protocol;
using MQTTnet;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace EdgeSlm.EdgeModule.Cli;

/// <summary><c>edgeslm run</c> (the long-running module) and <c>edgeslm demo</c>.</summary>
internal static class ModuleCommands
{
    // Flags of run besides --config; any other setting is --Section:Key VALUE.
    private static readonly string[] TopLevelSettings = ["SiteId", "Model", "Intents", "Profiles", "Threads", "EncoderThreads", "Threshold", "MaxPayloadBytes", "QueueCapacity", "MaxBatch", "MaxTokens", "MaxIntents", "MaxExamples", "ExamplesPerTemplate", "CacheDirectory"];

    public static int Run(Arguments args, TextWriter error)
    {
        (ModuleSettings settings, IConfiguration configuration) = Settings(args, error, out int exit);
        if (exit != CommandLine.ExitOk)
        {
            return exit;
        }
        using IHost host = ModuleHost.Build(settings, configuration);
        return StartAndWait(host, error, async () => await host.WaitForShutdownAsync());
    }

    /// <summary>
    /// The module on its embedded defaults (embedded broker, bundled model, the sample home intents), fed a few
    /// transcripts over MQTT; prints what comes back, then stops.
    /// </summary>
    public static int Demo(Arguments args, TextWriter output, TextWriter error)
    {
        var extra = new Dictionary<string, string?>(StringComparer.Ordinal) { ["Mqtt:Broker"] = "embedded", ["Mqtt:EmbeddedPort"] = "0" };
        string[] sentences = args.Positional.Count > 0 ? args.Positional.ToArray() : DemoSentences;
        (ModuleSettings settings, IConfiguration configuration) = Settings(args, error, out int exit, extra);
        if (exit != CommandLine.ExitOk)
        {
            return exit;
        }
        using IHost host = ModuleHost.Build(settings, configuration);
        return StartAndWait(host, error, async () =>
        {
            IntentService module = host.Services.GetRequiredService<IntentService>();
            await module.Connected.WaitAsync(TimeSpan.FromSeconds(30));
            await DemoClientAsync(module.EmbeddedBrokerPort!.Value, settings.SiteId, sentences, output);
            await host.StopAsync();
        });
    }

    /// <summary>
    /// Exit 0 when the module with these settings is online: connects to its broker (the embedded one on
    /// localhost) and reads the retained <c>edgeslm/&lt;site&gt;/status</c>; with the wyoming profile alone, asks
    /// its Wyoming port for info instead. For container health checks, where there is no shell to run anything else.
    /// </summary>
    public static int Health(Arguments args, TextWriter output, TextWriter error)
    {
        int timeout = args.IntOption("timeout", 5, 1, 300);
        (ModuleSettings settings, IConfiguration _) = Settings(args, error, out int exit);
        if (exit != CommandLine.ExitOk)
        {
            return exit;
        }
        if (settings.ParsedProfiles() == Protocols.ProtocolProfile.Wyoming)
        {
            // Wyoming alone publishes no MQTT status: ask the service itself.
            string wyoming = Wyoming.WyomingHealth.CheckAsync(settings.Wyoming, TimeSpan.FromSeconds(timeout)).GetAwaiter().GetResult();
            (wyoming == "online" ? output : error).WriteLine($"{(wyoming == "online" ? "" : "edgeslm: ")}wyoming port {settings.Wyoming.Port}: {wyoming}");
            return wyoming == "online" ? CommandLine.ExitOk : CommandLine.ExitFailure;
        }
        BrokerAddress address = BrokerAddress.Parse(settings.Mqtt.Broker);
        if (address.Embedded)
        {
            address = address with { Port = settings.Mqtt.EmbeddedPort };
        }
        string topic = new ModuleTopics(settings.SiteId).Status;
        string status = HealthStatusAsync(settings, address, topic, TimeSpan.FromSeconds(timeout)).GetAwaiter().GetResult();
        if (status == "online")
        {
            output.WriteLine($"{topic}: online");
            return CommandLine.ExitOk;
        }
        error.WriteLine($"edgeslm: {topic}: {status}");
        return CommandLine.ExitFailure;
    }

    private static async Task<string> HealthStatusAsync(ModuleSettings settings, BrokerAddress address, string topic, TimeSpan timeout)
    {
        using IMqttClient client = new MqttClientFactory().CreateMqttClient();
        var status = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        client.ApplicationMessageReceivedAsync += e =>
        {
            status.TrySetResult(Encoding.UTF8.GetString(e.ApplicationMessage.Payload));
            return Task.CompletedTask;
        };
        // A throwaway clean session with no last will: a health check must never publish "offline" for the module.
        var builder = new MqttClientOptionsBuilder().WithTcpServer(address.Host, address.Port)
            .WithClientId($"edgeslm-health-{Guid.NewGuid():N}"[..30]).WithCleanStart(true).WithTimeout(timeout);
        builder = Messaging.MqttConnection.WithSecurity(builder, settings.Mqtt, address);
        try
        {
            using var deadline = new CancellationTokenSource(timeout);
            await client.ConnectAsync(builder.Build(), deadline.Token);
            await client.SubscribeAsync(topic, MqttQualityOfServiceLevel.AtMostOnce, deadline.Token);
            string value = await status.Task.WaitAsync(deadline.Token);
            await client.DisconnectAsync();
            return value;
        }
        catch (OperationCanceledException)
        {
            return client.IsConnected ? "no status (the module has never connected to this broker)" : "the broker did not answer";
        }
        catch (Exception e) when (e is MQTTnet.Exceptions.MqttCommunicationException or System.Net.Sockets.SocketException or IOException)
        {
            return $"cannot reach the broker at {address.Host}:{address.Port} ({e.Message})";
        }
    }

    // Template matches first, then paraphrases no template lists (the classifier's path), then things to refuse.
    private static readonly string[] DemoSentences =
    [
        "turn on the kitchen lights",
        "dim the living room lights to 30 percent",
        "set a timer for ten minutes",
        "i'd like the kitchen light on, thanks",
        "will it rain tomorrow",
        "crank up the heating to twenty one degrees",
        "play some jazz in the living room",
        "how tall is mount everest",
    ];

    private static async Task DemoClientAsync(int port, string siteId, string[] sentences, TextWriter output)
    {
        using IMqttClient client = new MqttClientFactory().CreateMqttClient();
        var answers = new Dictionary<string, TaskCompletionSource<string>>(StringComparer.Ordinal);
        for (int i = 0; i < sentences.Length; i++)
        {
            answers[$"demo-{i + 1}"] = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        }
        client.ApplicationMessageReceivedAsync += e =>
        {
            string payload = Encoding.UTF8.GetString(e.ApplicationMessage.Payload);
            using var json = System.Text.Json.JsonDocument.Parse(payload);
            if (json.RootElement.TryGetProperty("id", out var id) && id.GetString() is string key && answers.TryGetValue(key, out var answer))
            {
                answer.TrySetResult(payload);
            }
            return Task.CompletedTask;
        };
        await client.ConnectAsync(new MqttClientOptionsBuilder().WithTcpServer("127.0.0.1", port).WithClientId("edgeslm-demo").Build());
        await client.SubscribeAsync(new ModuleTopics(siteId).Intent, MqttQualityOfServiceLevel.AtLeastOnce);
        await client.SubscribeAsync(new ModuleTopics(siteId).Error, MqttQualityOfServiceLevel.AtLeastOnce);
        for (int i = 0; i < sentences.Length; i++)
        {
            string request = Encoding.UTF8.GetString(Protocols.JsonFields.Object(w =>
            {
                w.WriteString("id", $"demo-{i + 1}");
                w.WriteString("text", sentences[i]);
            }));
            output.WriteLine($"> edgeslm/{siteId}/transcript {request}");
            await client.PublishStringAsync(new ModuleTopics(siteId).Transcript, request, MqttQualityOfServiceLevel.AtLeastOnce);
            string answer = await answers[$"demo-{i + 1}"].Task.WaitAsync(TimeSpan.FromSeconds(60));
            output.WriteLine($"< edgeslm/{siteId}/intent {answer}");
        }
        await client.DisconnectAsync();
    }

    private static (ModuleSettings, IConfiguration) Settings(Arguments args, TextWriter error, out int exit, Dictionary<string, string?>? extra = null)
    {
        var commandLine = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        foreach ((string flag, string key) in ModuleHost.Flags)
        {
            if (args.Option(flag) is string value) commandLine[key] = value;
        }
        foreach (string name in args.OptionNames)
        {
            if (name.Contains(':') || TopLevelSettings.Contains(name, StringComparer.OrdinalIgnoreCase))
            {
                commandLine[name] = args.Option(name);
            }
        }
        foreach ((string key, string? value) in extra ?? [])
        {
            commandLine[key] = value;
        }
        string? configFile = args.Option("config");
        args.RejectUnknown();
        try
        {
            exit = CommandLine.ExitOk;
            return ModuleHost.LoadSettings(configFile, commandLine);
        }
        catch (SettingsException e)
        {
            foreach (string line in e.Message.Split(Environment.NewLine))
            {
                error.WriteLine($"edgeslm: {line}");
            }
            exit = CommandLine.ExitUsage;
            return (null!, null!);
        }
    }

    private static int StartAndWait(IHost host, TextWriter error, Func<Task> whileRunning)
    {
        try
        {
            host.StartAsync().GetAwaiter().GetResult();
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // A corrupt model, unreadable intents, a port in use: one line and a non-zero exit.
            error.WriteLine($"edgeslm: cannot start: {Describe(e)}");
            return CommandLine.ExitFailure;
        }
        whileRunning().GetAwaiter().GetResult();
        return CommandLine.ExitOk;
    }

    private static string Describe(Exception e) => e switch
    {
        AggregateException { InnerExceptions.Count: 1 } a => Describe(a.InnerExceptions[0]),
        TypeInitializationException { InnerException: Exception inner } => Describe(inner),
        _ => e.Message,
    };
}
