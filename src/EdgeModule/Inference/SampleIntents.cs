using EdgeSlm.Intents.Definitions;

namespace EdgeSlm.EdgeModule.Inference;

/// <summary>The sample home intents (lights, climate, timers, media, weather) built into the binary.</summary>
public static class SampleIntents
{
    public const string ResourceName = "EdgeSlm.EdgeModule.intents.home.yaml";

    public static string Text()
    {
        using Stream stream = typeof(SampleIntents).Assembly.GetManifestResourceStream(ResourceName)
            ?? throw new InvalidOperationException($"the built-in intents ({ResourceName}) are missing from this build");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }

    public static IntentDefinitions Load() => IntentDefinitions.FromYaml(Text(), "built-in home.yaml");
}
